"""Runner throughput and padding on the embedded demo corpus.

Measures, in one run and on the same machine:
1. the share of padded audio frames per batch for the runner's length-grouped batching versus plain
   random batches (computed over every batch of one epoch, for several seeds), and
2. train samples/s of a real ``python -m ctc_tui.runner`` training with each batching (same model, same
   steps; samples/s from the runner's own step events, warm-up steps excluded).

Usage: python bench/throughput.py [--steps 80] [--batch-size 16]
Last line: ``throughput grouped=A random=B speedup=A/B padding grouped=X random=Y``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ctc_tui.runner.batching import length_grouped_batches, padding_fraction, random_batches  # noqa: E402


def demo_lengths() -> list[int]:
    import soundfile as sf

    folder = REPO / "presets" / "data" / "demo-speech" / "train"
    return [sf.info(str(p)).frames for p in sorted(folder.glob("*.flac"))]


def padding(lengths: list[int], batch_size: int, seeds: int = 5) -> tuple[float, float]:
    grouped = [
        padding_fraction(lengths, length_grouped_batches(lengths, batch_size, s)) for s in range(seeds)
    ]
    rand = [padding_fraction(lengths, random_batches(len(lengths), batch_size, s)) for s in range(seeds)]
    return statistics.mean(grouped), statistics.mean(rand)


def train_rate(group: bool, steps: int, batch_size: int, workdir: Path) -> float:
    out = workdir / f"run-{'grouped' if group else 'random'}"
    cmd = [
        sys.executable,
        "-m",
        "ctc_tui.runner",
        str(REPO / "presets" / "demo-cpu.yaml"),
        f"training.max_steps={steps}",
        "training.logging_steps=10",
        f"training.group_by_length={str(group).lower()}",
        f"training.per_device_train_batch_size={batch_size}",
        "training.do_eval=false",
        "training.save_strategy=no",
        "training.throughput_warmup_steps=10",
        f"training.output_dir={out}",
    ]
    env = dict(os.environ, CTC_TUI_CACHE=str(workdir / "cache"))
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates = []
    for line in (out / "logs" / "events-rank-0.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "step" and event.get("samples_per_second"):
            rates.append(event["samples_per_second"])
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    lengths = demo_lengths()
    grouped_pad, random_pad = padding(lengths, args.batch_size)
    print(f"demo corpus: {len(lengths)} train clips, batch size {args.batch_size}")
    print(
        f"padded frames per batch: grouped {grouped_pad:.3f}, random {random_pad:.3f} "
        f"({random_pad / max(grouped_pad, 1e-9):.1f}x less padding)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        random_rate = train_rate(False, args.steps, args.batch_size, work)
        grouped_rate = train_rate(True, args.steps, args.batch_size, work)
    print(f"train samples/s: grouped {grouped_rate:.1f}, random {random_rate:.1f}")
    print(
        f"throughput grouped={grouped_rate:.1f} random={random_rate:.1f} "
        f"speedup={grouped_rate / random_rate:.2f} "
        f"padding grouped={grouped_pad:.3f} random={random_pad:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
