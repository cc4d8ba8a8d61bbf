"""Issue 21, item 3: one ``training.torch_compile`` setting on CPU, CUDA and HPU.

The runner's plan (backend, dynamic shapes by padding, the recompile limit), what goes to the Trainer's
arguments on each backend, a real dynamo compile with the in-process ``eager`` backend (inductor would
start a C++ compiler: tests/integration/test_compile.py trains with it), the compile events (the
callback on a fake clock, the rules at ingest, the fold) and the line the dashboard and the headless view
show."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ctc_tui.core import events
from ctc_tui.core.preset import load_preset
from ctc_tui.runs.fmt import compile_text
from ctc_tui.runs.headless import PlainPrinter, render
from tests.unit.helpers import console, ev, fed

DEMO = Path(__file__).resolve().parents[2] / "presets" / "demo-cpu.yaml"


def demo(*overrides: str):
    return load_preset(DEMO, list(overrides))


# -- the plan ------------------------------------------------------------------------------------------
def test_no_plan_unless_asked_and_none_on_hpu_where_gaudi_trainer_compiles():
    from ctc_tui.runner import compiling

    assert compiling.plan_for(demo(), "cpu", None) is None
    assert compiling.plan_for(demo("training.torch_compile=true"), "hpu", [16000]) is None
    assert compiling.requested(demo("training.torch_compile_backend=inductor"))  # a backend turns it on


def test_dynamic_shapes_for_longest_padding_one_graph_per_bucket_otherwise():
    from ctc_tui.runner import compiling

    longest = compiling.plan_for(demo("training.torch_compile=true"), "cpu", None)
    assert longest == compiling.Plan("inductor", True, 10)
    buckets = compiling.plan_for(
        demo("training.torch_compile=true"), "cuda", [3200 * k for k in range(1, 21)]
    )
    assert buckets is not None and not buckets.dynamic
    assert buckets.recompile_limit >= 2 * 20  # every bucket, in training and in evaluation
    named = compiling.plan_for(demo("training.torch_compile_backend=aot_eager"), "cpu", [16000])
    assert named is not None and named.backend == "aot_eager"
    assert "dynamic shapes" in longest.describe() and "one graph per batch shape" in buckets.describe()


def test_auto_padding_is_buckets_when_compiling():
    """Few batch shapes, few graphs: inductor on the CPU recompiled as dynamic lengths changed."""
    from ctc_tui.runner.collate import padding_mode

    assert padding_mode(demo(), "cpu") == "longest"
    assert padding_mode(demo("training.torch_compile=true"), "cpu") == "buckets"
    assert padding_mode(demo("training.torch_compile_backend=inductor"), "cuda") == "buckets"
    assert padding_mode(demo("training.torch_compile=true", "data.padding=longest"), "cpu") == "longest"


def test_cpu_training_arguments_never_compile_twice(tmp_path):
    """On CPU / CUDA the runner compiles the model itself: TrainingArguments never see the compile fields."""
    from ctc_tui.runner import backends
    from ctc_tui.runner.trainer import make_arguments

    preset = demo("training.torch_compile=true", "training.torch_compile_mode=max-autotune-no-cudagraphs")
    arguments = make_arguments(preset, tmp_path, "cpu", 1)
    assert arguments.training.torch_compile is False and arguments.training.torch_compile_mode is None
    for device in ("cpu", "cuda"):
        assert not {"torch_compile", "torch_compile_mode"} & set(
            backends.trainer_kwargs(preset, "d", device, 1)
        )


def test_hpu_arguments_pass_compile_to_gaudi_trainer():
    """On HPU GaudiTrainer compiles: the fields pass through (GaudiTrainingArguments picks hpu_backend)."""
    from ctc_tui.runner import backends, compiling

    kwargs = backends.trainer_kwargs(demo("training.torch_compile=true"), "d", "hpu", 1)
    assert kwargs["torch_compile"] is True and "torch_compile_backend" not in kwargs
    assert compiling.backend_for(demo("training.torch_compile=true"), "hpu") == "hpu_backend"
    named = backends.trainer_kwargs(demo("training.torch_compile_backend=eager"), "d", "hpu", 1)
    assert named["torch_compile_backend"] == "eager"


def test_the_mode_reaches_the_compile_plan():
    from ctc_tui.runner import compiling

    plan = compiling.plan_for(demo("training.torch_compile_mode=max-autotune-no-cudagraphs"), "cpu", [16000])
    assert (
        plan is not None
        and plan.mode == "max-autotune-no-cudagraphs"
        and "mode max-autotune" in plan.describe()
    )


def test_a_real_compile_counts_its_graphs_and_keeps_the_state_dict_keys():
    """nn.Module.compile in place: the checkpoint's keys stay (no ``_orig_mod.``); a new shape with
    dynamic=False compiles a second graph, the same shape again none."""
    import torch

    from ctc_tui.runner import compiling

    class Tiny(torch.nn.Module):  # a model of its own: dynamo does not trace torch.nn's containers
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.nn.functional.gelu(self.linear(x))

    torch._dynamo.reset()
    model = Tiny()
    keys = list(model.state_dict())
    before = compiling.compile_counts()["graphs"]
    compiling.compile_model(model, compiling.Plan("eager", False, 16))
    model(torch.ones(2, 4))
    model(torch.ones(2, 4))
    assert compiling.compile_counts()["graphs"] == before + 1
    model(torch.ones(5, 4))
    assert compiling.compile_counts()["graphs"] == before + 2
    assert list(model.state_dict()) == keys

    class WithHead(torch.nn.Module):  # a Hugging Face model: its base model compiles, its head does not
        def __init__(self) -> None:
            super().__init__()
            self.base_model, self.head = Tiny(), torch.nn.Linear(3, 2)

    wrapped = WithHead()
    compiling.compile_model(wrapped, compiling.Plan("eager", False, 16))
    assert wrapped.base_model._compiled_call_impl is not None and wrapped._compiled_call_impl is None
    assert torch._dynamo.config.recompile_limit >= 16


# -- the events ----------------------------------------------------------------------------------------
class Sent(list):
    def emit(self, kind: str, **fields) -> None:
        self.append((kind, fields))


def test_the_callback_reports_after_the_first_step_and_when_more_graphs_compile():
    from ctc_tui.runner.compiling import CompileCallback

    clock = iter([10.0, 22.5])
    counts = {"graphs": 2, "graph_breaks": 1}
    sent = Sent()
    callback = CompileCallback(sent, "inductor", counts=lambda: dict(counts), now=lambda: next(clock))
    state = SimpleNamespace(global_step=1)
    callback.on_step_begin(None, state, None)
    callback.on_step_end(None, state, None)
    assert sent == [
        ("compile", dict(step=1, backend="inductor", first_step_seconds=12.5, graphs=2, graph_breaks=1))
    ]
    for step in (2, 3):  # nothing new compiled: nothing sent, and the clock is not read again
        state.global_step = step
        callback.on_step_begin(None, state, None)
        callback.on_step_end(None, state, None)
    assert len(sent) == 1
    counts["graphs"] = 3  # a new bucket length
    state.global_step = 4
    callback.on_step_end(None, state, None)
    assert (
        sent[-1][1]["graphs"] == 3 and sent[-1][1]["step"] == 4 and sent[-1][1]["first_step_seconds"] == 12.5
    )
    counts["graphs"] = 4  # evaluation's graph
    callback.on_evaluate(None, state, None)
    assert sent[-1][1]["graphs"] == 4 and len(sent) == 3


def test_compile_events_are_checked_at_ingest():
    good = ev("compile", step=1, graphs=3, graph_breaks=0, first_step_seconds=12.5, backend="inductor")
    assert events.validate(events.decode(events.encode(good))) == good
    for field, bad in (("graphs", -1), ("graphs", 1.5), ("first_step_seconds", -2), ("backend", 3)):
        with pytest.raises(events.BadEvent, match=f"compile.{field}"):
            events.validate(dict(good, **{field: bad}))


def test_the_fold_keeps_the_lowest_ranks_latest_compile_event():
    state = fed(
        ev("compile", rank=1, graphs=9, first_step_seconds=30.0),
        ev("compile", rank=0, graphs=2, first_step_seconds=12.0, backend="inductor", junk="x"),
        ev("compile", rank=1, graphs=11, first_step_seconds=30.0),
        ev("compile", rank=0, graphs=3, first_step_seconds=12.0, backend="inductor"),
        ev("compile", rank=0, graphs="many"),  # a hand-edited line: the bad field is left out
    )
    assert state.compiled is not None and state.compiled["rank"] == 0
    assert state.compiled["graphs"] is None and state.compiled["first_step_seconds"] is None
    state = fed(ev("compile", rank=0, graphs=3, first_step_seconds=12.0, backend="inductor"))
    assert state.compiled == dict(
        step=None, graphs=3, graph_breaks=None, first_step_seconds=12.0, backend="inductor", rank=0
    )


def test_the_line_the_views_show():
    assert compile_text({"graphs": 3, "first_step_seconds": 12.34, "backend": "inductor"}) == (
        "compiled 3 graphs, first step 12.3 s (inductor)"
    )
    assert compile_text({"graphs": 1, "graph_breaks": 2}) == "compiled 1 graph (2 graph breaks)"
    state = fed(
        ev("state", state="training"),
        ev("step", step=10, loss=1.0, max_steps=100),
        ev("compile", graphs=3, first_step_seconds=12.0, backend="inductor"),
    )
    out = console()
    out.print(render(state))
    assert "compiled 3 graphs, first step 12.0 s (inductor)" in out.export_text()
    plain = console()
    printer = PlainPrinter(plain)
    event = ev("compile", rank=1, graphs=2, first_step_seconds=8.0)
    printer(state.feed(event), state)
    assert "[rank 1] compiled 2 graphs, first step 8.0 s" in plain.export_text()


def test_an_uncompiled_run_shows_no_compile_line():
    out = console()
    out.print(render(fed(ev("step", step=10, loss=1.0, max_steps=100))))
    assert "compiled" not in out.export_text()


async def test_the_dashboard_summary_shows_the_compile_line(tmp_path, monkeypatch):
    from ctc_tui.runs import client
    from tests.unit.test_dashboard_ranks import SIZE, DashboardApp, Feed, shown

    feed = Feed()
    monkeypatch.setattr(client, "follow", feed.follow)
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put([ev("hello", world_size=1, host="h"), ev("step", step=10, loss=1.0, max_steps=100)])
        await shown(pilot, feed)
        assert "compiled" not in summary_text(pilot.app.screen)
        feed.put(
            [ev("compile", step=1, graphs=3, graph_breaks=1, first_step_seconds=41.0, backend="inductor")]
        )
        await shown(pilot, feed)
        summary = summary_text(pilot.app.screen)
        assert "compiled 3 graphs (1 graph break), first step 41.0 s (inductor)" in summary


def summary_text(screen) -> str:
    """What the dashboard's summary panel shows (the Static's content: what ``_summary`` drew last)."""
    out = console()
    out.print(screen.query_one("#summary").content)
    return out.export_text()
