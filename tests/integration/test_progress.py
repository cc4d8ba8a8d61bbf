"""Issue 12, item 4, for real: forked preprocessing workers' clips counted in the parent's progress, and
``ctc-tui attach`` of a run that is preprocessing showing the bar (the dashboard and the headless view in
tmux, the plain lines through a pipe). The rank is frozen (SIGSTOP) mid-preprocessing, so what the views
must show is known exactly, whatever the machine's speed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import REPO, events_of, has, make_librispeech, preset_dict, run_cli, wait_for, write_audio

pytestmark = pytest.mark.slow

CLIPS = 3000  # symlinks to a few 6-7.5 s clips at 22.05 kHz: ~10 s of preprocessing with 2 workers here


def test_forked_workers_clips_are_counted_while_they_work(tmp_path):
    """Each of 2 forked workers reads a batch, then waits at its second one until the parent has
    reported a count between 0 and all: a count only the workers' shared counter can give."""
    from ctc_tui.core.preset import validate_data
    from ctc_tui.runner.data import BATCH_CLIPS, load_raw_split, preprocess
    from ctc_tui.runner.text import make_normaliser
    from tests.unit.test_data import _FE, _Tok

    gate = tmp_path / "parent-saw-a-partial-count"

    class _GatedFE(_FE):
        calls = 0  # per process: each forked worker counts its own clips

        def __call__(self, samples, sampling_rate):
            _GatedFE.calls += 1
            if _GatedFE.calls == BATCH_CLIPS + 1:  # the worker's second batch waits for the parent
                deadline = time.monotonic() + 60
                while not gate.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            return super().__call__(samples, sampling_rate)

    make_librispeech(tmp_path / "libri", "train", rate=16000, speakers=2, per_chapter=BATCH_CLIPS + 8)
    data = {"source": "librispeech", "dataset_dir": str(tmp_path / "libri"), "preprocessing_num_workers": 2}
    c = validate_data({"data": data}, "t").data
    raw = load_raw_split(c, "train")
    total = len(raw.text)
    calls: list[tuple[int, int]] = []

    def on_progress(done: int, of: int) -> None:
        calls.append((done, of))
        if 0 < done < of:
            gate.touch()

    prepared = preprocess(raw, "train", make_normaliser(None), _Tok(), _GatedFE(), c, "s", on_progress)
    assert len(prepared.dataset) == total and len(prepared.dataset.cache_files) == 2
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert any(0 < done < total for done, _ in calls), calls  # counted in the workers, seen by the parent
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def make_corpus(root: Path, split: str, clips: int, per_chapter: int = 100) -> None:
    """A LibriSpeech tree of ``clips`` utterances, each a symlink to one of 4 longer clips at 22.05 kHz
    (decoded and resampled every time: preprocessing work without writing thousands of files)."""
    sources = [
        write_audio(root / "_sources" / f"{k}.flac", 6.0 + 0.5 * k, 22050, freq=200 + 90 * k)
        for k in range(4)
    ]
    words = ["ONE TWO", "THREE", "FOUR FIVE SIX", "SEVEN"]
    for start in range(0, clips, per_chapter):
        chapter = start // per_chapter
        folder = root / split / "1" / str(chapter)
        folder.mkdir(parents=True)
        lines = []
        for i in range(start, min(clips, start + per_chapter)):
            uid = f"1-{chapter}-{i:05d}"
            os.symlink(sources[i % 4], folder / f"{uid}.flac")
            lines.append(f"{uid} {words[i % 4]}")
        (folder / f"1-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def progress_of(run_dir: Path, what: str) -> list[dict]:
    return [e for e in events_of(run_dir) if e["type"] == "progress" and e["what"] == what]


def test_attach_shows_the_bar_of_a_run_that_is_preprocessing(tmp_path):
    assert has("tmux"), "apt-get install tmux (.ci/run installs it)"
    from tests.integration.test_tui_e2e import Tmux

    make_corpus(tmp_path / "libri", "train", CLIPS)
    make_corpus(tmp_path / "libri", "test", 40)
    preset = tmp_path / "preset.yaml"
    sections = {"data": {"preprocessing_num_workers": 2, "preprocessing_only": True}}
    preset.write_text(yaml.safe_dump(preset_dict(tmp_path, **sections), sort_keys=False))
    run_dir = tmp_path / "run"
    start = run_cli("run", str(preset), "--output-dir", str(run_dir), "--detach", timeout=120)
    assert start.returncode == 0, start.stdout + start.stderr

    # Under way: a count of the train split between none and all. Then the rank and its workers freeze.
    wait_for(
        lambda: any(0 < e["done"] < CLIPS for e in progress_of(run_dir, "preprocess-train")),
        timeout=300,
        what="a progress event of the train split under way",
    )
    hello = next(e for e in events_of(run_dir) if e["type"] == "hello" and e["rank"] == 0)
    rank = psutil.Process(hello["pid"])
    frozen = [rank, *rank.children(recursive=True)]
    for proc in frozen:
        proc.suspend()
    stopped_at = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    plain_out = tmp_path / "attach-plain.txt"
    try:
        time.sleep(0.5)  # what the rank sent before it froze reaches events.jsonl
        last = progress_of(run_dir, "preprocess-train")[-1]
        assert 0 < last["done"] < CLIPS, last
        shown = re.escape(f"{last['done']:,}/{CLIPS:,}")
        with plain_out.open("w") as sink:
            plain = subprocess.Popen(
                [sys.executable, "-m", "ctc_tui", "attach", str(run_dir), "--plain"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        for view, flags, bar in (("dashboard", "", "[█░]{36}"), ("headless", " --headless", "[━╸╺]+")):
            tmux = Tmux(
                f"ctc-progress-{view}-{os.getpid()}",  # a server of its own: the last one may still be ending
                tmp_path,
                f"{sys.executable} -m ctc_tui attach {run_dir}{flags}; sleep 600",
                env,
            )
            try:
                tmux.wait_for(rf"preprocess-train +{bar} +{shown}  \d+%  [\d.]+/s  ETA \d\d:\d\d", 90)
            finally:
                tmux.close()
        # the plain printer prints a phase every 5 s of event time: the first event after the thaw is due
        time.sleep(max(0.0, stopped_at + 6 - time.monotonic()))
    finally:
        for proc in frozen:
            try:
                proc.resume()
            except psutil.NoSuchProcess:
                pass
    assert plain.wait(timeout=300) == 0, plain_out.read_text()[-3000:]

    text = plain_out.read_text()
    lines = [line for line in text.splitlines() if line.startswith("preprocess-train: ")]
    assert lines[0].startswith(f"preprocess-train: 0/{CLIPS:,}  0%"), text
    assert lines[-1].startswith(f"preprocess-train: {CLIPS:,}/{CLIPS:,}  100%"), text
    counts = [int(re.match(r"preprocess-train: ([\d,]+)/", line)[1].replace(",", "")) for line in lines]
    assert any(0 < count < CLIPS for count in counts[1:-1]), text  # a bar under way, printed live
    assert "preprocess-eval: 40/40  100%" in text and "Traceback" not in text

    # what the rank sent: counts that only grow, at most one a second but the last, all of both splits
    train = progress_of(run_dir, "preprocess-train")
    assert [e["done"] for e in train] == sorted(e["done"] for e in train)
    assert train[-1]["done"] == train[-1]["total"] == CLIPS and train[-1]["rate"] > 0
    gaps = [b["t"] - a["t"] for a, b in zip(train, train[1:-1])]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert [(e["done"], e["total"]) for e in progress_of(run_dir, "preprocess-eval")][-1] == (40, 40)
    assert events_of(run_dir)[-1]["state"] == "done"
