"""Make the embedded demo corpus: English speech synthesised offline with espeak-ng.

``python -m ctc_tui.runner.make_demo_corpus --out DIR [--train N] [--eval M] [--sample-rate SR]
[--layout audiofolder|librispeech] [--seed S]``

Transcripts are mostly digit sequences ("THREE, SEVEN NINE.") in LibriSpeech's upper case, with
punctuation a ``chars_to_ignore`` list strips, and about one in ten carries words with an apostrophe
or a hyphen (DON'T, O'CLOCK, TWENTY-ONE) that a correct cleaner keeps. Voices, speeds and pitches
vary per clip; the output is deterministic for a seed. espeak-ng speaks at 22050 Hz; clips are
trimmed of silence and resampled with soxr to ``--sample-rate``.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
EXTRAS = [
    "DON'T STOP",
    "IT'S {d} O'CLOCK",
    "TWENTY-ONE",
    "FORTY-TWO",
    "DON'T {d}",
    "IT'S {d}",
    "{d} O'CLOCK",
    "TWENTY-ONE {d}",
    "FORTY-TWO {d}",
]
VOICES = [
    "en-us",
    "en",
    "en-gb-x-rp",
    "en-us+m3",
    "en+f2",
    "en-us+m7",
    "en+f4",
    "en-gb+m1",
    "en-us+f3",
    "en+m5",
]
PUNCT = [",", ".", "?", "!", ";"]


@dataclass(frozen=True)
class Clip:
    split: str
    index: int
    text: str
    voice: int
    speed: int
    pitch: int


def _digits(rng: random.Random, low: int = 2, high: int = 5) -> list[str]:
    return [rng.choice(DIGITS) for _ in range(rng.randint(low, high))]


def make_text(rng: random.Random) -> str:
    """A transcript in LibriSpeech's upper case, with punctuation to be ignored."""
    if rng.random() < 0.1:
        words = rng.choice(EXTRAS).format(d=rng.choice(DIGITS)).split()
    else:
        words = _digits(rng)
    out = []
    for i, word in enumerate(words):
        out.append(word + (rng.choice(PUNCT[:2]) if i < len(words) - 1 and rng.random() < 0.15 else ""))
    return " ".join(out) + (rng.choice(PUNCT) if rng.random() < 0.5 else "")


def plan(train: int, evaluate: int, seed: int) -> list[Clip]:
    rng = random.Random(seed)
    clips = []
    for split, count in (("train", train), ("eval", evaluate)):
        for i in range(count):
            clips.append(
                Clip(
                    split,
                    i,
                    make_text(rng),
                    rng.randrange(len(VOICES)),
                    rng.randint(140, 190),
                    rng.randint(30, 70),
                )
            )
    return clips


def synthesise(clip: Clip, rate: int) -> np.ndarray:
    import soundfile as sf

    spoken = clip.text.replace("-", " ")  # espeak reads "TWENTY-ONE" fine either way; keep it simple
    proc = subprocess.run(
        [
            "espeak-ng",
            "-v",
            VOICES[clip.voice],
            "-s",
            str(clip.speed),
            "-p",
            str(clip.pitch),
            "--stdout",
            spoken,
        ],
        capture_output=True,
        check=True,
    )
    samples, source_rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return trimmed(samples, source_rate, rate)


def trimmed(samples: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    """Mono, trimmed of leading and trailing silence, resampled to ``rate`` and scaled to full scale."""
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    if loud.size:
        pad = int(0.05 * source_rate)
        samples = samples[max(0, loud[0] - pad) : loud[-1] + pad]
    if source_rate != rate:
        import soxr

        samples = soxr.resample(samples, source_rate, rate, quality="HQ")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > 0:
        samples = samples * (0.9 / peak)  # full scale: the most out of 8-bit storage
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def write_audiofolder(out: Path, clips: list[Clip], audio: list[np.ndarray], rate: int, subtype: str) -> None:
    import soundfile as sf

    for split in sorted({c.split for c in clips}):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for clip, samples in zip(clips, audio):
            if clip.split == split:
                name = f"{split}-{clip.index:04d}.flac"
                sf.write(str(folder / name), samples, rate, subtype=subtype)
                rows.append((name, clip.text))
        with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "text"])
            writer.writerows(rows)


def write_librispeech(out: Path, clips: list[Clip], audio: list[np.ndarray], rate: int, subtype: str) -> None:
    """``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` + ``.trans.txt``; no punctuation,
    as in real LibriSpeech (apostrophes kept)."""
    import soundfile as sf

    names = {"train": "train-clean-100", "eval": "dev-clean"}
    lines: dict[Path, list[str]] = {}
    counters: dict[tuple[str, int], int] = {}
    for clip, samples in zip(clips, audio):
        speaker, chapter = 100 + clip.voice, 10 + clip.voice
        folder = out / names[clip.split] / str(speaker) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        utt = counters.get((clip.split, clip.voice), 0)
        counters[(clip.split, clip.voice)] = utt + 1
        uid = f"{speaker}-{chapter}-{utt:04d}"
        sf.write(str(folder / f"{uid}.flac"), samples, rate, subtype=subtype)
        text = "".join(ch for ch in clip.text if ch.isalpha() or ch in " '-").replace("-", " ")
        lines.setdefault(folder / f"{speaker}-{chapter}.trans.txt", []).append(
            f"{uid} {' '.join(text.split())}"
        )
    for path, entries in lines.items():
        path.write_text("\n".join(entries) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ctc_tui.runner.make_demo_corpus", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (must be empty or absent)")
    parser.add_argument("--train", type=int, default=800, help="training clips (default 800)")
    parser.add_argument("--eval", type=int, default=100, help="evaluation clips (default 100)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="output sample rate (default 16000)")
    parser.add_argument("--layout", choices=("audiofolder", "librispeech"), default="audiofolder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bits",
        type=int,
        choices=(8, 16),
        default=16,
        help="FLAC sample width; the committed corpus uses 8 to stay small",
    )
    parser.add_argument("--jobs", type=int, default=4, help="parallel espeak-ng processes")
    args = parser.parse_args(argv)

    if shutil.which("espeak-ng") is None:
        print("error: espeak-ng not found: apt-get install espeak-ng", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty; choose a new folder", file=sys.stderr)
        return 2
    if args.train < 1 or args.eval < 1 or args.sample_rate < 4000:
        print("error: --train and --eval must be >= 1 and --sample-rate >= 4000", file=sys.stderr)
        return 2
    clips = plan(args.train, args.eval, args.seed)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        audio = list(pool.map(lambda c: synthesise(c, args.sample_rate), clips))
    args.out.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_S8" if args.bits == 8 else "PCM_16"
    if args.layout == "audiofolder":
        write_audiofolder(args.out, clips, audio, args.sample_rate, subtype)
    else:
        write_librispeech(args.out, clips, audio, args.sample_rate, subtype)
    seconds = sum(len(a) for a in audio) / args.sample_rate
    print(
        f"{len(clips)} clips ({args.train} train, {args.eval} eval), "
        f"{seconds / 60:.1f} min of audio in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
