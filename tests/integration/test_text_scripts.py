"""Text in any script, through the real program: a German-like corpus (espeak-ng -v de) trains a tiny
model whose vocabulary holds its umlauts and ß and none of its quotation marks; then a Japanese-like
corpus (kana, no spaces, espeak-ng -v ja) fine-tunes that model: its vocabulary does not fit, so a new
one is built and the CTC head re-initialised (the run log says so), and CER is the primary metric (eval
events, the run's closing line, the best checkpoint)."""

from __future__ import annotations

import csv
import json
import random
import subprocess
from pathlib import Path

import pytest

from tests.conftest import events_of, run_cli

pytestmark = pytest.mark.slow

GERMAN = ["straße", "grüße", "fuß", "öl", "über", "mädchen", "schön", "müde", "bär", "süß", "käse", "groß"]
QUOTES = [("„", "“"), ("«", "»"), ("‹", "›"), ("‚", "‘"), ("“", "”"), ('"', '"')]
KANA = ["きょう", "あした", "てんき", "いい", "です", "わたし", "がくせい", "ねこ", "いぬ", "すし"]
TINY = [
    "training.max_steps=2",
    "training.eval_strategy=steps",
    "training.eval_steps=1",
    "training.save_steps=1",
    "training.save_total_limit=4",
    "training.per_device_train_batch_size=8",
    "training.warmup_steps=0",
    "data.remove_punctuation=true",
]


def german_line(rng: random.Random) -> str:
    words = rng.sample(GERMAN, 3)
    left, right = rng.choice(QUOTES)
    words[0] = f"{left}{words[0].capitalize()}{right}"
    return " ".join(words) + rng.choice([",", ".", "!", "?", " …", " – ja."])


def kana_line(rng: random.Random) -> str:
    return "".join(rng.sample(KANA, 3)) + rng.choice(["。", "、です。", ""])


def make_corpus(root: Path, voice: str, line, counts=(16, 4), seed: int = 0) -> None:
    """An audiofolder corpus (``root/<split>/metadata.csv``) spoken by espeak-ng, clips made in parallel."""
    rng = random.Random(seed)
    jobs = []
    for split, count in zip(("train", "eval"), counts):
        folder = root / split
        folder.mkdir(parents=True)
        rows = [(f"{i:03d}.wav", line(rng)) for i in range(count)]
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "text"])
            writer.writerows(rows)
        jobs += [["espeak-ng", "-v", voice, "-w", str(folder / name), text] for name, text in rows]
    for start in range(0, len(jobs), 8):
        running = [subprocess.Popen(job) for job in jobs[start : start + 8]]
        assert all(p.wait(timeout=60) == 0 for p in running)


def logs(run_dir: Path) -> str:
    return "\n".join(e.get("message", "") for e in events_of(run_dir) if e.get("type") == "log")


def test_german_vocabulary_then_a_japanese_fine_tune_with_cer_first(tmp_path):
    make_corpus(tmp_path / "de", "de", german_line)
    make_corpus(tmp_path / "ja", "ja", kana_line)

    de_run = tmp_path / "de-run"
    out = run_cli(
        "run",
        "demo-cpu",
        *TINY,
        f"data.dataset_dir={tmp_path / 'de'}",
        "--output-dir",
        str(de_run),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    vocab = json.loads((de_run / "vocab.json").read_text())
    assert {"ä", "ö", "ü", "ß", "|"} <= vocab.keys()
    assert not {"„", "“", "”", "«", "»", "‹", "›", "‚", "‘", '"', "…", "–", ",", "!", "?"} & vocab.keys()
    assert "eval WER" in out.stdout and "eval step 1: WER" in out.stdout  # spaced text: WER leads

    ja_run = tmp_path / "ja-run"
    out = run_cli(
        "run",
        "demo-cpu",
        *TINY,
        "model.architecture=null",
        f"model.model_name_or_path={de_run}",
        f"data.dataset_dir={tmp_path / 'ja'}",
        "--output-dir",
        str(ja_run),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    vocab = json.loads((ja_run / "vocab.json").read_text())
    assert {"き", "ょ", "す"} <= vocab.keys() and "|" not in vocab and "。" not in vocab and "、" not in vocab
    said = logs(ja_run)
    assert f"built a new vocabulary of {len(vocab)} tokens instead of {de_run}'s" in said
    assert "the CTC head (lm_head) is re-initialised" in said and "text without spaces" in said
    evals = [e for e in events_of(ja_run) if e.get("type") == "eval"]
    assert evals and all(e["primary"] == "cer" for e in evals)
    assert "eval step 1: CER" in out.stdout and "eval CER" in out.stdout
    state = json.loads((ja_run / "checkpoint-2" / "trainer_state.json").read_text())
    cers = [entry["eval_cer"] for entry in state["log_history"] if "eval_cer" in entry]
    assert state["best_metric"] == min(cers)  # the best checkpoint is chosen by CER
