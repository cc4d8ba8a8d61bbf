"""Shared fixtures: small audio corpora made on the fly, an isolated preprocessing cache."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "presets" / "data" / "demo-speech"


@pytest.fixture(autouse=True)
def _no_stray_runs(tmp_path):
    """Runs are detached on purpose; a failing test must still not leave one behind."""
    yield
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if any(str(tmp_path) in part for part in cmd) and proc.pid != os.getpid():
            try:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
            except psutil.Error:
                pass


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache (and never writes to the user's)."""
    monkeypatch.setenv("CTC_TUI_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_audio(path: Path, seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate, freq, channels), rate)
    return path


def make_librispeech(
    root: Path,
    split: str,
    rate: int = 22050,
    speakers: int = 2,
    per_chapter: int = 3,
    texts: list[str] | None = None,
) -> list[str]:
    """A LibriSpeech-shaped tree of short tones; returns the transcripts in reading order."""
    texts = texts or ["HELLO WORLD", "DON'T STOP", "TWENTY-ONE", "IT'S NINE O'CLOCK", "A B C", "ONE TWO"]
    written = []
    k = 0
    for speaker in range(speakers):
        chapter = 100 + speaker
        folder = root / split / str(speaker) / str(chapter)
        lines = []
        for utt in range(per_chapter):
            uid = f"{speaker}-{chapter}-{utt:04d}"
            write_audio(folder / f"{uid}.flac", 0.5 + 0.1 * utt, rate, freq=300 + 50 * k)
            text = texts[k % len(texts)]
            lines.append(f"{uid} {text}")
            written.append(text)
            k += 1
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return written


def make_audiofolder(root: Path, split: str, rows: list[tuple[str, str]], rate: int = 16000) -> None:
    folder = root / split
    for i, (name, _) in enumerate(rows):
        write_audio(folder / name, 0.4 + 0.05 * i, rate)
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        writer.writerows(rows)


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """The real ``ctc-tui`` program, in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ctc_tui", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture
def demo_data() -> Path:
    assert DEMO_DATA.is_dir(), (
        "the committed demo corpus is missing (python -m ctc_tui.runner.make_demo_corpus)"
    )
    return DEMO_DATA


def has(binary: str) -> bool:
    return shutil.which(binary) is not None


def events_of(run_dir: Path) -> list[dict]:
    """A run's events.jsonl so far ([] before it exists). A live run's file may end in a line still
    being written: that one is left for the next look; any other line that is not JSON is an error."""
    try:
        text = (run_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    *complete, _still_written = text.split("\n")  # "" when the file ends with a newline
    return [json.loads(line) for line in complete if line.strip()]


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """``predicate()``'s first true value, asked every 0.1 s; AssertionError naming ``what`` after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def preset_dict(tmp_path: Path, data_dir: Path | None = None, **sections) -> dict:
    base = {
        "model": {"architecture": "wav2vec2-tiny"},
        "data": {
            "source": "librispeech",
            "dataset_dir": str(data_dir or tmp_path / "libri"),
            "train_split_name": "train",
            "eval_split_name": "test",
        },
        "training": {"output_dir": str(tmp_path / "out"), "use_cpu": True, "max_steps": 5},
        "launch": {"launcher": "single", "world_size": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


def sbatch_lines(script: str) -> list[str]:
    """The #SBATCH options as sbatch reads them: only in the script's leading comment block, words grouped by
    double quotes (which are removed)."""
    options = []
    for line in script.splitlines()[1:]:
        if line and not line.startswith("#"):
            break
        if line.startswith("#SBATCH "):
            options += [
                word.replace('"', "") for word in re.findall(r'(?:[^\s"]|"[^"]*")+', line[len("#SBATCH ") :])
            ]
    return options


SEED_TEXT = REPO.parent / "shared" / "seeds" / "000_0b2efa244f96ecab.txt"


#: Overrides that turn a lazy-mode HPU preset into eager + torch.compile (optimum-habana's current form).
EAGER_COMPILE = (
    "gaudi.use_lazy_mode=false",
    "training.torch_compile=true",
    "training.torch_compile_backend=hpu_backend",
)


def seed_command() -> str:
    """The seed README's multi-card command, exactly as a user would paste it."""
    if SEED_TEXT.is_file():
        text = SEED_TEXT.read_text()
        start = text.index("python optimum-habana/examples/gaudi_spawn.py")
        return text[start : text.index("```", start)]
    return (REPO / "tests" / "data" / "seed_command.sh").read_text()


@pytest.fixture
def libri(tmp_path) -> Path:
    """A LibriSpeech-layout corpus at 16 kHz: train (two speakers) and test (one)."""
    root = tmp_path / "libri"
    make_librispeech(root, "train", rate=16000)
    make_librispeech(root, "test", rate=16000, speakers=1)
    return root
