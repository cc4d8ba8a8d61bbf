"""Make a tiny Common Voice-shaped release folder, spoken offline by espeak-ng (German by default).

``python -m ctc_tui.runner.make_cv_corpus --out DIR [--locale de|fr] [--train N] [--dev M] [--test K]
[--rates 48000,32000] [--seed S]``

The layout is Mozilla's: ``DIR/<locale>/clips/common_voice_<locale>_<n>.mp3`` (MP3, 48 kHz unless
``--rates`` cycles through others) and ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``validated.tsv`` (the
three together), ``other.tsv`` and ``invalidated.tsv`` with a recent release's columns (``client_id path
sentence_id sentence sentence_domain up_votes down_votes age gender accents variant locale segment``),
written as Mozilla writes them: tab-separated, nothing quoted. German sentences are number words and a
few words with umlauts and ß, some in typographic („…“) or plain ("…") quotation marks. Run it again with
another ``--locale`` and the same ``--out`` for a release of several locales. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ctc_tui.runner.make_demo_corpus import trimmed

COLUMNS = (
    "client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant "
    "locale segment"
).split()
WORDS = {
    "de": {
        "digits": "null eins zwei drei vier fünf sechs sieben acht neun".split(),
        "extras": ["Grüße aus Köln", "die Straße ist schön", "ein großer Bär", "zwölf Mädchen", "süß"],
        "voices": ["de", "de+m3", "de+f2", "de+m5", "de+f4"],
    },
    "fr": {
        "digits": "zéro un deux trois quatre cinq six sept huit neuf".split(),
        "extras": ["ça va", "très bien", "l'été"],
        "voices": ["fr", "fr+m3", "fr+f2"],
    },
}
VOTES = {"other": (0, 0), "invalidated": (1, 3)}  # every other split: 2 up, 0 or 1 down
QUOTES = (("„", "“"), ('"', '"'), ("«", "»"))


def make_sentence(rng: random.Random, locale: str) -> str:
    """A short sentence: number words, or (one in five) a phrase with umlauts or ß; some are quoted."""
    bank = WORDS[locale]
    if rng.random() < 0.2:
        words = rng.choice(bank["extras"]).split()
    else:
        words = [rng.choice(bank["digits"]) for _ in range(rng.randint(2, 4))]
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    if rng.random() < 0.2:
        opening, closing = rng.choice(QUOTES)
        return f"{opening}{text}{closing}, sagte sie." if locale == "de" else f"{opening}{text}{closing}"
    return text + rng.choice([".", "!", "?", ""])


def synthesise(text: str, voice: str, rate: int, rng: random.Random) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice``, trimmed of silence, at ``rate`` Hz."""
    import soundfile as sf

    spoken = "".join(ch for ch in text if ch.isalnum() or ch in " '")
    args = ["espeak-ng", "-v", voice, "-s", str(rng.randint(140, 180)), "-p", str(rng.randint(30, 70))]
    proc = subprocess.run([*args, "--stdout", spoken], capture_output=True, check=True)
    samples, source_rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return trimmed(samples, source_rate, rate)


def plan(locale: str, counts: dict[str, int], seed: int) -> list[dict[str, str]]:
    """The rows of every clip: split, sentence, votes, voice, in order."""
    rng = random.Random(f"{seed}-{locale}")
    rows = []
    for split, count in counts.items():
        for _ in range(count):
            index = len(rows)
            up, down = (
                (0, 0) if split == "other" else (2, 3) if split == "invalidated" else (2, rng.randint(0, 1))
            )
            rows.append(
                {
                    "split": split,
                    "client_id": hashlib.sha256(f"{locale}{index % 7}".encode()).hexdigest()[:32],
                    "path": f"common_voice_{locale}_{1000 + index}.mp3",
                    "sentence_id": hashlib.sha256(f"{locale}{index}".encode()).hexdigest()[:16],
                    "sentence": make_sentence(rng, locale),
                    "up_votes": str(up),
                    "down_votes": str(down),
                    "voice": rng.choice(WORDS[locale]["voices"]),
                    "seed": str(rng.randrange(1 << 30)),
                }
            )
    return rows


def tsv_line(row: dict[str, str], locale: str) -> str:
    values = {"sentence_domain": "", "age": "", "gender": "", "accents": "", "variant": "", "segment": ""}
    values.update({k: v for k, v in row.items() if k in COLUMNS}, locale=locale)
    return "\t".join(values.get(c, "") for c in COLUMNS)


def write_locale(
    out: Path, locale: str, rows: list[dict[str, str]], audio: list[tuple[np.ndarray, int]]
) -> None:
    """The clips as MP3 and one TSV per split (validated = train + dev + test), as Mozilla lays them out."""
    import soundfile as sf

    folder = out / locale
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for row, (samples, rate) in zip(rows, audio):
        sf.write(str(folder / "clips" / row["path"]), samples, rate, format="MP3")
    splits = {
        s: [r for r in rows if r["split"] == s] for s in ("train", "dev", "test", "other", "invalidated")
    }
    splits["validated"] = splits["train"] + splits["dev"] + splits["test"]
    for split, members in splits.items():
        lines = ["\t".join(COLUMNS)] + [tsv_line(r, locale) for r in members]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ctc_tui.runner.make_cv_corpus", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="the release folder (a new locale in it)")
    parser.add_argument("--locale", choices=sorted(WORDS), default="de")
    parser.add_argument("--train", type=int, default=200, help="training clips (default 200)")
    parser.add_argument("--dev", type=int, default=30, help="dev clips (default 30)")
    parser.add_argument("--test", type=int, default=30, help="test clips (default 30)")
    parser.add_argument("--other", type=int, default=3, help="unvoted clips in other.tsv (default 3)")
    parser.add_argument(
        "--rates", default="48000", help="sample rates the clips cycle through (Hz, comma-separated)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=4, help="parallel espeak-ng processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if shutil.which("espeak-ng") is None:
        print("error: espeak-ng not found: apt-get install espeak-ng", file=sys.stderr)
        return 2
    if (args.out / args.locale).exists():
        print(f"error: {args.out / args.locale} exists; choose a new folder or locale", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    counts = {"train": args.train, "dev": args.dev, "test": args.test, "other": args.other, "invalidated": 2}
    rows = plan(args.locale, counts, args.seed)

    def speak(item: tuple[int, dict[str, str]]) -> tuple[np.ndarray, int]:
        index, row = item
        rate = rates[index % len(rates)]
        return synthesise(row["sentence"], row["voice"], rate, random.Random(row["seed"])), rate

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        audio = list(pool.map(speak, enumerate(rows)))
    write_locale(args.out, args.locale, rows, audio)
    seconds = sum(len(a) / rate for a, rate in audio)
    print(f"{len(rows)} clips, {seconds / 60:.1f} min of audio in {args.out / args.locale}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
