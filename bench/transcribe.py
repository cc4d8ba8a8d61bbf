"""Chunked transcription of long audio on the CPU: real-time factor, a 10-minute file against its clips
transcribed one by one, and peak memory for 1 and 10 minutes.

Builds 1- and N-minute FLAC recordings (16 kHz mono as the clips are; ``--rate``, ``--channels`` for
others) from the demo's eval clips with short silences between them (bench/longfile.py). In this
process: the model is loaded once (runner/transcribe.py's ``load``), then the long file is transcribed
in windows and, for comparison, each clip placed in it is transcribed as its own file. In child
processes (``python -m ctc_tui.runner.transcribe``): peak RSS of the 1-minute and the N-minute file
(``os.wait4``'s ``ru_maxrss``). Goals: the long file within 1.2x the time of its clips; peak RSS of N
minutes within 1.2x that of 1 minute.

Usage: python bench/transcribe.py RUN_DIR [--minutes 10] [--chunk-seconds 10] [--rate 16000]
[--channels 1] [--repeats 3] [--threads 1]
Also timed: the long file with the model's feature encoder run whole on each window (as before
runner/transcribe.py ran it in pieces). Last line: ``transcribe rtf=X long_s=A clips_s=B ratio=R
ratio_whole_encoder=W rss_1min_mb=M1 rss_long_mb=M2 rss_ratio=Q``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from bench.longfile import build_long, clips_of  # noqa: E402
from ctc_tui.runner import transcribe  # noqa: E402

DEMO_EVAL = REPO / "presets" / "data" / "demo-speech" / "eval"
GAP = (0.1, 0.4)  # short silences: the long file holds about as much audio as its clips


def peak_rss_mb(run_dir: Path, path: Path, chunk_seconds: float, threads: int) -> float:
    """Peak resident memory (MiB) of a child transcribing ``path``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "ctc_tui.runner.transcribe", str(run_dir), str(path)]
    command += ["--chunk-seconds", str(chunk_seconds), "--format", "json"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"transcribing {path} failed (status {status})")
    return usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--chunk-seconds", type=float, default=transcribe.DEFAULT_CHUNK_SECONDS)
    parser.add_argument("--rate", type=int, default=16000, help="the long files' rate (the clips': 16000)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ctc-tui-bench-transcribe-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work)  # the recordings (a 10-minute FLAC is ~10 MB)
    return 0


def measure(args: argparse.Namespace, work: Path) -> None:
    """Build the recordings in ``work``, time them and print the figures."""
    clips = clips_of(DEMO_EVAL)
    short, long = work / "1min.flac", work / f"{args.minutes:g}min.flac"
    build_long(clips, short, 60, rate=args.rate, channels=args.channels, gap=GAP)
    placed = build_long(clips, long, args.minutes * 60, rate=args.rate, channels=args.channels, gap=GAP)
    cli = ["--chunk-seconds", str(args.chunk_seconds)]
    t = transcribe.load(transcribe.parse_args([str(args.run_dir), str(long), *cli]))
    whole = transcribe.load(transcribe.parse_args([str(args.run_dir), str(long), *cli]), pieces=False)

    long_s = clips_s = whole_s = float("inf")
    for _ in range(args.repeats):  # alternated, the best of each: a shared machine's noise hits all
        start = time.perf_counter()
        result = transcribe.transcribe(t, str(long))
        long_s = min(long_s, time.perf_counter() - start)
        start = time.perf_counter()
        for clip in placed:
            transcribe.transcribe(t, str(clip.path))
        clips_s = min(clips_s, time.perf_counter() - start)
        start = time.perf_counter()
        transcribe.transcribe(whole, str(long))
        whole_s = min(whole_s, time.perf_counter() - start)
    clip_audio = sum(p.end - p.start for p in placed)
    overlap = t.chunk / (t.chunk - 2 * t.context)
    print(f"{long.name}: {result['duration']:.0f} s ({clip_audio:.0f} s of it clips), {len(placed)} clips")
    print(
        f"chunked: {long_s:.1f} s (rtf {long_s / result['duration']:.3f}); "
        f"clips one by one: {clips_s:.1f} s; chunked with the feature encoder whole (before): {whole_s:.1f} s"
    )
    print(
        f"windows of {t.chunk / t.rate:g} s heard {overlap:.3f}x over, the file "
        f"{result['duration'] / clip_audio:.3f}x its clips' audio: at equal cost per second, ratio "
        f"{overlap * result['duration'] / clip_audio:.3f}"
    )

    rss_short = peak_rss_mb(args.run_dir, short, args.chunk_seconds, args.threads)
    rss_long = peak_rss_mb(args.run_dir, long, args.chunk_seconds, args.threads)
    print(f"peak RSS: 1 min {rss_short:.0f} MiB, {args.minutes:g} min {rss_long:.0f} MiB")
    print(
        f"transcribe rtf={long_s / result['duration']:.4f} long_s={long_s:.2f} clips_s={clips_s:.2f} "
        f"ratio={long_s / clips_s:.3f} ratio_whole_encoder={whole_s / clips_s:.3f} "
        f"rss_1min_mb={rss_short:.0f} rss_long_mb={rss_long:.0f} "
        f"rss_ratio={rss_long / rss_short:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
