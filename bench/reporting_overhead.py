"""Reporting overhead: training step time with event reporting to a live supervisor versus without.

One process, one model, one fixed batch: the CPU demo's ``wav2vec2-tiny`` (built by ``ctc_tui.runner.model``
from ``presets/demo-cpu.yaml``) takes real AdamW steps (forward, CTC loss, backward, grad clipping,
optimizer step) on 16 clips of the embedded demo corpus. Each step runs in one of three modes:

- ``off``:    no reporting at all;
- ``file``:   the runner's reporting (``ctc_tui.runner.events.EventCallback`` +
              ``ctc_tui.runner.report.Reporter``, with ``ReportingMixin``'s per-step loss/sample accounting),
              log socket off: events go to ``logs/events-rank-0.jsonl`` only;
- ``socket``: the same, with the reporter also connected to the log socket of a real supervisor
              (started as ``ctc-tui run`` starts it) that ingests and persists every event.

Steps run in interleaved blocks, the order of the modes rotated each cycle, so that drift (thermal,
allocator, other load) falls on all modes alike. By default every step is logged (``on_log`` each
step: a ``step`` and a ``resource`` event), the worst case; the demo preset logs every 10 steps.
Besides the median step times the bench times the reporting calls themselves (a direct reading
that step-time noise cannot hide).

Usage: python bench/reporting_overhead.py [--cycles 10] [--block 8] [--logging-steps 1]
Last line: ``reporting_overhead on_ms=... off_ms=... overhead_pct=...``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODES = ("off", "file", "socket")


def build(batch_size: int, workdir: Path):
    """The demo's model, tokenizer and one fixed batch of real demo clips."""
    import csv

    import soundfile as sf
    import torch

    from ctc_tui.core.preset import load_preset
    from ctc_tui.runner.collate import CtcCollator
    from ctc_tui.runner.model import build, make_tokenizer
    from ctc_tui.runner.text import normaliser_for

    preset = load_preset(REPO / "presets" / "demo-cpu.yaml")
    folder = REPO / "presets" / "data" / "demo-speech" / "train"
    with open(folder / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    normalise = normaliser_for(preset.data)
    texts = [normalise(r["text"]) for r in rows]
    tokenizer, vocab = make_tokenizer(preset, texts, workdir / "vocab")
    built = build(preset, tokenizer, vocab)
    fe = built.feature_extractor
    features = []
    for row, text in list(zip(rows, texts))[:batch_size]:
        audio, rate = sf.read(str(folder / row["file_name"]), dtype="float32")
        assert rate == fe.sampling_rate
        features.append(
            {
                "input_values": fe(audio, sampling_rate=rate).input_values[0],
                "labels": tokenizer(text).input_ids,
            }
        )
    batch = CtcCollator(fe, "input_values")(features)
    model = built.model
    model.train()
    t = preset.training
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=t.learning_rate,
        betas=(t.adam_beta1, t.adam_beta2),
        weight_decay=t.weight_decay,
    )
    return preset, model, optimizer, batch


class Reporting:
    """The runner's reporting path for one reporter: what Trainer calls around each step."""

    def __init__(self, reporter, logging_steps: int, max_steps: int):
        import torch
        from transformers import TrainerControl, TrainerState

        from ctc_tui.runner.events import EventCallback, RankStats
        from ctc_tui.runner.stopping import StopRequest
        from ctc_tui.runner.trainer import ReportingMixin

        class Shim(ReportingMixin):  # the attributes EventCallback reads from the trainer
            pass

        self.trainer = Shim()
        self.trainer.ctc_reporter, self.trainer.ctc_stats = reporter, RankStats()
        self.callback = EventCallback(self.trainer, reporter, StopRequest(), warmup_steps=2, backend="cpu")
        self.args = SimpleNamespace(device=torch.device("cpu"))
        self.state = TrainerState(max_steps=max_steps, is_world_process_zero=True)
        self.control = TrainerControl()
        self.logging_steps = logging_steps
        self.callback.on_train_begin(self.args, self.state, self.control)
        self.seconds = 0.0  # time spent in reporting calls
        self.calls = 0

    def after_step(self, loss, grad_norm: float, batch_size: int, lr: float) -> None:
        t0 = time.perf_counter()
        stats = self.trainer.ctc_stats  # ReportingMixin.training_step's accounting
        stats.loss_sum = stats.loss_sum + loss.detach()
        if stats.timed:
            stats.samples += batch_size
        self.state.global_step += 1
        self.state.epoch = self.state.global_step / 50
        self.callback.on_step_end(self.args, self.state, self.control)
        if self.state.global_step % self.logging_steps == 0:
            self.callback.on_log(
                self.args,
                self.state,
                self.control,
                logs={"loss": float(loss.detach()), "learning_rate": lr, "grad_norm": grad_norm},
            )
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def train_step(model, optimizer, batch, reporting: Reporting | None, lr: float) -> float:
    import torch

    t0 = time.perf_counter()
    out = model(**batch)
    out.loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if reporting is not None:
        reporting.after_step(out.loss, float(grad_norm), int(batch["labels"].shape[0]), lr)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--block", type=int, default=8, help="steps per mode per cycle")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--logging-steps", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=6)
    args = parser.parse_args()

    import psutil
    import torch

    from ctc_tui.runner.report import Reporter
    from ctc_tui.runs import client
    from ctc_tui.supervisor import LOG_SOCKET, Spec, read_events

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="ctc-tui-overhead-") as tmp:
        work = Path(tmp)
        preset, model, optimizer, batch = build(args.batch_size, work)
        lr = preset.training.learning_rate
        run_dir = work / "run"
        sup_pid = client.start_detached(run_dir, Spec(command=["sleep", "3600"]))
        try:
            socket_reporter = Reporter(0, run_dir, str(run_dir / LOG_SOCKET))
            assert socket_reporter.connected, "could not connect to the supervisor's log socket"
            file_reporter = Reporter(1, run_dir, None)  # rank 1's file: the same work, no socket
            total = args.warmup + args.cycles * args.block
            reporting = {
                "off": None,
                "file": Reporting(file_reporter, args.logging_steps, total),
                "socket": Reporting(socket_reporter, args.logging_steps, total),
            }
            print(
                f"model: {preset.model.architecture}, "
                f"{sum(p.numel() for p in model.parameters()):,} parameters; "
                f"batch {tuple(batch['input_values'].shape)}; torch threads {torch.get_num_threads()}, "
                f"cores {os.cpu_count()}; on_log every {args.logging_steps} step(s)"
            )
            for _ in range(args.warmup):
                train_step(model, optimizer, batch, None, lr)
            times: dict[str, list[float]] = {m: [] for m in MODES}
            for cycle in range(args.cycles):
                order = MODES[cycle % 3 :] + MODES[: cycle % 3]
                if cycle % 2:
                    order = order[::-1]
                for mode in order:
                    for _ in range(args.block):
                        times[mode].append(train_step(model, optimizer, batch, reporting[mode], lr))
            socket_reporter.close()
            file_reporter.close()
            # every event the socket reporter sent reached events.jsonl
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                arrived = [e for e in read_events(run_dir) if e["rank"] == 0 and e["type"] == "step"]
                if len(arrived) * args.logging_steps >= len(times["socket"]):
                    break
                time.sleep(0.2)
            sup_rss = psutil.Process(sup_pid).memory_info().rss
            status = asyncio.run(client.request(run_dir, "status"))
        finally:
            try:
                client.stop(run_dir, kill=True)
            except client.NotRunning:
                pass
            try:
                psutil.Process(sup_pid).wait(30)
            except psutil.Error:
                pass

    med = {m: statistics.median(v) * 1000 for m, v in times.items()}
    q = {m: statistics.quantiles(v, n=4) for m, v in times.items()}
    print(
        f"steps per mode: {len(times['off'])} (in {args.cycles} cycles of {args.block}-step blocks per mode)"
    )
    for m in MODES:
        print(
            f"  {m:6s} median {med[m]:8.2f} ms  (quartiles {q[m][0] * 1000:.2f} .. {q[m][2] * 1000:.2f} ms)"
        )
    for name in ("file", "socket"):
        r = reporting[name]
        per_step = r.seconds / r.calls * 1000
        print(
            f"  {name:6s} reporting calls themselves: {per_step * 1000:.0f} us per step "
            f"= {per_step / med['off'] * 100:.3f} % of a step"
        )
    print(
        f"supervisor: {status.get('events')} events recorded, "
        f"{len(arrived)} step events of rank 0 in events.jsonl "
        f"({len(times['socket']) // args.logging_steps} sent), "
        f"reporter dropped {socket_reporter.dropped}; supervisor RSS "
        f"{sup_rss / (1 << 20):.1f} MB"
    )
    over = (med["socket"] - med["off"]) / med["off"] * 100
    over_file = (med["file"] - med["off"]) / med["off"] * 100
    direct = reporting["socket"].seconds / reporting["socket"].calls * 1000 / med["off"] * 100
    print(
        f"overhead of reporting over the log socket vs none: {over:+.2f} % (median step times); "
        f"file only: {over_file:+.2f} %; directly timed: {direct:.3f} %. Goal < 1 %: "
        f"{'meets' if max(over, direct) < 1 else 'MISSES'}"
    )
    print(
        f"reporting_overhead on_ms={med['socket']:.2f} off_ms={med['off']:.2f} overhead_pct={over:.2f} "
        f"file_ms={med['file']:.2f} direct_pct={direct:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
