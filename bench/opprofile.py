"""Where a training step's time goes, eager against torch.compile: torch.profiler's top operators.

``bench/limit.py --op-profile N`` calls ``report``: the bare loop (forward + CTC loss, backward,
optimizer step) on the batches ``limit.prepare`` saved, profiled over a few steps after warm-up, once
with the model eager and once compiled as the runner compiles it (``ctc_tui.runner.compiling``), each
from the same first weights in this process. It prints, per side, the N operators with the most
self CPU time (inductor's generated kernels show as ``Torch-Compiled Region`` / ``cpp_fused_...``;
oneDNN's convolutions and matrix products as ``aten::`` / ``mkldnn`` ops).

Alone: python bench/opprofile.py BARE_FILE [--top 15] [--fixed-shapes]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WARMUP_STEPS = 3
PROFILED_STEPS = 5


def _model_and_optimizer(saved: dict[str, Any]) -> tuple[Any, Any]:
    model = saved["model_class"](saved["config"])
    model.load_state_dict(saved["init_state"])
    model.train()
    params = dict(model.named_parameters())
    spec = saved["spec"]
    groups = [
        {"params": [params[n] for n in g["names"]], "weight_decay": g["weight_decay"]}
        for g in spec["param_groups"]
        if g["names"]
    ]
    return model, spec["optimizer_cls"](groups, **spec["optimizer_kwargs"])


def _steps(model: Any, optimizer: Any, batches: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def profile_side(saved: dict[str, Any], compiled: bool, fixed_shapes: bool, top: int) -> tuple[str, float]:
    """The profiler's table of the ``top`` operators by self CPU time, and seconds per profiled step."""
    from torch.profiler import ProfilerActivity, profile

    from ctc_tui.runner import compiling

    model, optimizer = _model_and_optimizer(saved)
    if compiled:
        compiling.compile_model(model, compiling.Plan("inductor", not fixed_shapes, 64))
    batches = saved["batches"]
    _steps(model, optimizer, batches[:WARMUP_STEPS])  # compiling (compiled side), oneDNN's first calls
    timed = batches[WARMUP_STEPS : WARMUP_STEPS + PROFILED_STEPS]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = _steps(model, optimizer, timed)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=60)
    return table, seconds / len(timed)


def report(bare_file: Path, top: int, fixed_shapes: bool | str = False) -> None:
    """Print both sides' tables (see the module's docstring)."""
    import torch

    saved = torch.load(bare_file, weights_only=False)
    for compiled in (False, True):
        table, per_step = profile_side(saved, compiled, bool(fixed_shapes), top)
        name = "compiled (inductor)" if compiled else "eager"
        print(f"torch.profiler, bare loop {name}: {per_step * 1000:.0f} ms a step; top {top} ops by self CPU")
        print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bare_file", type=Path, help="what bench/limit.py's prepare saved (bare.pt)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--fixed-shapes", action="store_true", help="compile with dynamic=False")
    args = parser.parse_args()
    report(args.bare_file, args.top, args.fixed_shapes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
