"""The Textual app driven by Textual's Pilot: each wizard step, the saved preset, the dashboard and runs
screens fed from real run dirs, and SVG snapshots of the screens (pytest-textual-snapshot)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Checkbox, DataTable, Input, OptionList, Select

from ctc_tui.core.preset import load_preset
from ctc_tui.tui import make_app
from ctc_tui.tui.app import CtcTuiApp
from ctc_tui.tui.screens.dashboard import DashboardScreen
from ctc_tui.tui.widgets.dialogs import ChoiceScreen
from ctc_tui.tui.widgets.plot import LinePlot
from ctc_tui.wizard.draft import Draft
from tests.checkpoint_files import make_checkpoint
from tests.conftest import REPO

DEMO = REPO / "presets" / "demo-cpu.yaml"
DEVICES = Text("CPU: 1 socket, 2 cores, 2 threads (no HPU, no GPU)")
SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub")))


def wizard(save_path: Path, preset: Path = DEMO) -> CtcTuiApp:
    app = make_app(preset=str(preset), save_path=str(save_path))
    app.devices_text = DEVICES  # the cards step shows what was detected; fixed here for repeatable screens
    return app


def plain(pilot, selector: str) -> str:
    """What a Static shows, as plain text (rendered by rich, whatever renderable it holds)."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(pilot.app.screen.query_one(selector).content)
    return captured.get()


async def settle(pilot) -> None:
    """Wait for the screens' workers (data check, device scan, event replay); the wizard's own loop
    runs for the whole session and is left out."""
    app = pilot.app
    others = [w for w in app.workers if w.group != "wizard"]
    if others:  # (an empty list would mean "wait for all")
        await app.workers.wait_for_complete(others)
    await pilot.pause()


async def type_into(pilot, selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)


async def next_step(pilot, expected: str) -> None:
    await pilot.press("ctrl+n")
    await pilot.pause()
    assert type(pilot.app.screen).__name__ == expected, plain(pilot, "#problems")


async def test_wizard_edits_every_step_and_saves_the_expected_preset(tmp_path):
    out = tmp_path / "mine.yaml"
    app = wizard(out)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        # 1 model: pick the small architecture from the list
        models = app.screen.query_one("#models", OptionList)
        models.focus()
        models.highlighted = [o.id for o in models.options].index("wav2vec2-small")
        await pilot.press("enter")
        assert app.screen.query_one("#f-model--architecture", Select).value == "wav2vec2-small"
        await next_step(pilot, "DataStep")
        # 2 data: the check runs on the demo corpus; shorten the duration cap
        await settle(pilot)
        assert app.scan is not None and [s.clips for s in app.scan.splits] == [800, 100]
        await type_into(pilot, "#f-data--max_duration_in_seconds", "5")
        await next_step(pilot, "TextStep")
        # 3 text: stop removing '?' and watch the preview keep it
        await type_into(pilot, "#f-data--chars_to_ignore", ', . ! ; : "')
        await pilot.pause()
        assert "?" in app.screen.vocab and any("?" in after for _, after in app.screen.rows)
        await next_step(pilot, "CardsStep")
        # 4 cards: two ranks under torchrun
        app.screen.query_one("#f-launch--launcher", Select).value = "torchrun"
        await type_into(pilot, "#f-launch--world_size", "2")
        await next_step(pilot, "PrecisionStep")
        # 5 precision: bf16 on (space toggles the focused checkbox)
        app.screen.query_one("#f-training--bf16", Checkbox).focus()
        await pilot.press("space")
        await next_step(pilot, "TrainingStep")
        # 6 training
        await type_into(pilot, "#f-training--max_steps", "30")
        await type_into(pilot, "#f-training--learning_rate", "0.001")
        await next_step(pilot, "ReviewStep")
        # 7 review: the YAML and the command are shown; save
        command = plain(pilot, "#command")
        assert "torch.distributed.run" in command and "--nproc_per_node 2" in command
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.return_value and str(out) in app.return_value
    expected = load_preset(
        DEMO,
        [
            "model.architecture=wav2vec2-small",
            "data.max_duration_in_seconds=5",
            'data.chars_to_ignore=,.!;:"',
            "launch.launcher=torchrun",
            "launch.world_size=2",
            "training.bf16=true",
            "training.max_steps=30",
            "training.learning_rate=0.001",
        ],
    )
    assert load_preset(out).to_dict() == expected.to_dict()
    assert out.read_text().startswith("# written by the ctc-tui wizard")


async def test_precision_step_offers_eager_compile_and_lazy_mode(tmp_path):
    """On a Gaudi preset, the precision step's mode choice sets the switches of eager + torch.compile
    (Intel's default path) or of lazy mode, and the draft validates either way."""
    app = wizard(tmp_path / "g.yaml", REPO / "presets" / "librispeech-100h-2card-mpi.yaml")
    app.step_index = 4
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        mode = app.screen.query_one("#gaudi-mode", Select)
        assert mode.value == "lazy" and "recommended" in str(mode._options[1][0])
        mode.value = "eager-compile"
        await pilot.pause()
        await next_step(pilot, "TrainingStep")
        draft = app.draft
        assert draft.get("gaudi.use_lazy_mode") is False and draft.get("training.torch_compile") is True
        assert draft.get("training.torch_compile_backend") == "hpu_backend"
        assert draft.get("gaudi.use_hpu_graphs_for_training") is False
        await pilot.press("escape")
        await pilot.pause()
        mode = app.screen.query_one("#gaudi-mode", Select)
        assert mode.value == "eager-compile"
        mode.value = "lazy"
        await pilot.pause()
        await next_step(pilot, "TrainingStep")
        assert (
            app.draft.get("gaudi.use_lazy_mode") is True and app.draft.get("training.torch_compile") is None
        )
        assert app.draft.get("training.torch_compile_backend") is None


async def test_next_is_refused_with_the_models_message_and_back_keeps_values(tmp_path):
    app = wizard(tmp_path / "x.yaml")
    app.step_index = 5  # start at the training step
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#f-training--max_steps", "0")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert type(app.screen).__name__ == "TrainingStep"
        assert "max_steps must be a positive number" in plain(pilot, "#problems")
        await type_into(pilot, "#f-training--max_steps", "12")
        await pilot.press("escape")  # back to precision
        await pilot.pause()
        assert type(app.screen).__name__ == "PrecisionStep"
        await next_step(pilot, "TrainingStep")
        assert app.screen.query_one("#f-training--max_steps", Input).value == "12"
    assert not (tmp_path / "x.yaml").exists()


async def test_saving_over_an_existing_file_asks_and_keeps_it_on_no(tmp_path):
    out = tmp_path / "keep.yaml"
    out.write_text("# mine\n")
    app = wizard(out)
    app.step_index = 6
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.click("#answer-no")
        await pilot.pause()
        assert type(app.screen).__name__ == "ReviewStep"
    assert out.read_text() == "# mine\n"


def write_run(
    run_dir: Path, nan_rank: int | None = None, wer: list[float] = (0.9, 0.5), t0: float = 1.7e9
) -> Path:
    """A finished 2-rank run dir, as the supervisor would have written it."""
    run_dir.mkdir(parents=True)
    (run_dir / "logs").mkdir()
    events = []
    for rank in (0, 1):
        events.append(
            {"type": "hello", "t": t0, "rank": rank, "world_size": 2, "host": f"node{rank}", "pid": 1}
        )
        events.append({"type": "state", "t": t0, "rank": rank, "state": "training"})
    for step in range(10, 101, 10):
        for rank in (0, 1):
            loss = "nan" if (rank == nan_rank and step == 100) else 5.0 / step * 10 + rank * 0.01
            events.append(
                {
                    "type": "step",
                    "t": t0 + step,
                    "rank": rank,
                    "step": step,
                    "loss": loss,
                    "samples_per_second": 20.0 + rank,
                    "max_steps": 100,
                }
            )
        if step % 50 == 0:
            events.append(
                {
                    "type": "eval",
                    "t": t0 + step,
                    "rank": 0,
                    "step": step,
                    "wer": wer[step // 50 - 1],
                    "cer": 0.2,
                    "blank_fraction": 0.0,
                    "samples": [{"hyp": "one two", "ref": "one two"}, {"hyp": "tree", "ref": "three"}],
                }
            )
    for rank in (0, 1):
        events.append({"type": "state", "t": t0 + 101, "rank": rank, "state": "done"})
    events.append({"type": "exit", "t": t0 + 102, "rank": -1, "code": 0, "state": "done"})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "logs" / "rank-0.log").write_text("loading data\ntraining\n{'loss': 0.5}\n")
    return run_dir


class DashboardApp(CtcTuiApp):
    def __init__(self, run_dir: Path, now: float):
        super().__init__(mode="dashboard", run_dir=run_dir)
        self.now = now

    def show_dashboard(self, run_dir: Path):  # CtcTuiApp's own on_mount calls this, once
        return self.push_screen(DashboardScreen(run_dir, clock=lambda: self.now))


async def test_dashboard_replays_a_run_with_rows_plots_alerts_and_transcripts(tmp_path):
    run = write_run(tmp_path / "run", nan_rank=1)
    app = DashboardApp(run, now=1.7e9 + 200)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)
        assert sum(isinstance(s, DashboardScreen) for s in app.screen_stack) == 1  # one follower
        screen.redraw()
        table = screen.query_one("#ranks", DataTable)
        assert table.row_count == 2
        assert str(table.get_cell("1", "loss")) == "NaN"
        assert "rank 1: loss is NaN at step 100" in plain(pilot, "#alerts")
        assert "0.5000" in plain(pilot, "#summary")  # last eval WER
        assert len(screen.query_one("#wer-plot", LinePlot).series[0].points) == 2
        assert "tree" in plain(pilot, "#samples")
        assert "{'loss': 0.5}" in plain(pilot, "#log")
        await pilot.press("l")  # next log: rank 1 (empty), then the supervisor's
        assert "rank 1" in plain(pilot, "#log")
        await pilot.press("q")  # the run is over: q just leaves
        await pilot.pause()
    assert app.return_value == f"run dir: {run}"


async def test_the_dashboard_shows_a_bar_per_phase_in_progress_and_none_after(tmp_path):
    """Issue 12, item 4: progress events draw one bar per phase (summed over its ranks) with the count,
    rate and ETA; a run without any phase in progress has no bar panel."""
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    t0 = 1.7e9
    events = [{"type": "hello", "t": t0, "rank": r, "world_size": 2, "host": "n"} for r in (0, 1)]
    events += [{"type": "state", "t": t0, "rank": r, "state": "preprocessing"} for r in (0, 1)]
    progress = {"type": "progress", "t": t0 + 9}
    events.append(
        {**progress, "rank": 0, "what": "preprocess-train", "done": 1234, "total": 28539, "rate": 52.3}
    )
    events.append({**progress, "rank": 1, "what": "wait-cache", "done": 0, "total": 2})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    app = DashboardApp(run_dir, now=t0 + 10)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.redraw()
        await pilot.pause()
        assert app.screen.query_one("#progress").display
        lines = plain(pilot, "#progress").splitlines()
        assert re.search(r"^preprocess-train +█+░+ +1,234/28,539  4%  52\.3/s  ETA 08:42", lines[0]), lines
        assert re.search(r"^wait-cache +░{36} +0/2  0%  0\.0/s  ETA --:--", lines[1]), lines
    app = DashboardApp(write_run(tmp_path / "done"), now=t0 + 200)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.redraw()
        assert not app.screen.query_one("#progress").display


async def test_runs_screen_overlays_the_wer_curves_of_two_marked_runs(tmp_path):
    write_run(tmp_path / "a", wer=[0.9, 0.4])
    write_run(tmp_path / "b", wer=[0.8, 0.3])
    make_checkpoint(tmp_path / "a", 10)
    make_checkpoint(tmp_path / "a", 20, without=("optimizer.pt",))  # a save cut short: not resumable
    app = make_app(runs_root=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 2
        assert (
            str(table.get_cell(str(tmp_path / "a"), "resumes from")) == "checkpoint-10 (skips checkpoint-20)"
        )
        assert str(table.get_cell(str(tmp_path / "b"), "resumes from")) == "-"
        table.focus()
        await pilot.press("space", "down", "space")
        series = app.screen.query_one("#compare-plot", LinePlot).series
        assert sorted(s.label for s in series) == ["a", "b"]
        assert all(len(s.points) == 2 for s in series)


async def test_the_dashboard_opens_the_runs_screen_and_it_opens_a_dashboard_by_messages(tmp_path):
    """The screens never import each other: the dashboard's runs key and the runs screen's open post
    messages, and the app shows the screen asked for."""
    first = write_run(tmp_path / "a", wer=[0.9, 0.4])
    second = write_run(tmp_path / "b", wer=[0.8, 0.3])
    app = make_app(run_dir=first)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and app.screen.run_dir == first
        await pilot.press("r")
        await settle(pilot)
        assert type(app.screen).__name__ == "RunsScreen" and app.screen.root == tmp_path
        table = app.screen.query_one("#runs-table", DataTable)
        table.focus()
        table.move_cursor(row=[r.path for r in app.screen.runs].index(second))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen) and app.screen.run_dir == second
        assert [type(s).__name__ for s in app.screen_stack[1:]] == [
            "DashboardScreen",
            "RunsScreen",
            "DashboardScreen",
        ]


# -- snapshots ----------------------------------------------------------------------------------------


def relative_demo_app(step: int) -> CtcTuiApp:
    draft = Draft.from_preset(load_preset(DEMO))
    draft.set("data.dataset_dir", "presets/data/demo-speech")  # machine-independent text in the picture
    app = CtcTuiApp(mode="wizard", draft=draft, save_path="demo-custom.yaml", devices_text=DEVICES)
    app.step_index = step
    return app


@pytest.mark.parametrize("step", [0, 1, 2, 3, 6])
def test_wizard_snapshots(step, snap_compare, monkeypatch):
    monkeypatch.chdir(REPO)
    app = relative_demo_app(step)
    if step == 2:  # the text preview needs the data check's transcripts
        from ctc_tui.sources.datacheck import scan

        app.scan = scan("audiofolder", "presets/data/demo-speech", ["train"])
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_dashboard_snapshot(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = write_run(tmp_path / "run", nan_rank=1)
    assert snap_compare(DashboardApp(run, now=1.7e9 + 200), terminal_size=SIZE, run_before=settle)


def test_the_first_steps_fields_described_by_hand_match_the_model():
    """The model step is drawn before the preset model is built, so it describes its fields itself; they
    must be what the model would make of them."""
    from ctc_tui.tui.screens.model_step import ModelStep
    from ctc_tui.wizard.draft import field_spec

    assert set(ModelStep.SPECS) == set(ModelStep.KEYS)
    for key, spec in ModelStep.SPECS.items():
        assert spec == field_spec(key), key


def test_a_pending_draft_shows_the_first_step_as_the_model_will_have_it(tmp_path):
    from ctc_tui.wizard.draft import Draft

    (tmp_path / "my-model").mkdir()
    path = tmp_path / "p.yaml"
    path.write_text("model:\n  model_name_or_path: my-model\ndata:\n  dataset_name: librispeech_asr\n")
    pending = Draft.pending(path)
    assert not pending.loaded
    first = {k: pending.get(k) for k in ("model.model_name_or_path", "model.architecture", "model.cache_dir")}
    assert first["model.model_name_or_path"] == str(tmp_path / "my-model")  # made absolute, as the model does
    loaded = Draft.from_preset(load_preset(path))
    assert first == {k: loaded.get(k) for k in first}
    assert pending.get("training.learning_rate") == loaded.get("training.learning_rate")  # loads on demand
    assert pending.loaded and pending.data == loaded.data


# -- eval results and jobs on the runs screen, results in the review (issue 19) ---------------------------


async def test_the_review_shows_eval_results_of_the_presets_run_dir(tmp_path):
    out = tmp_path / "out"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "eval.json").write_text(json.dumps({"split": "eval", "wer": 0.4123, "wer_lm": 0.3351}))
    draft = Draft.from_preset(load_preset(DEMO))
    draft.set("training.output_dir", str(out))
    app = CtcTuiApp(mode="wizard", draft=draft, save_path=str(tmp_path / "p.yaml"), devices_text=DEVICES)
    app.step_index = 6
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "ReviewStep"
        assert app.screen.query_one("#review-results").display
        assert f"{out} has eval results (WER, with the LM): eval 0.412 (LM 0.335)" in plain(
            pilot, "#review-results"
        )


async def test_the_runs_screen_refuses_an_unfinished_run_and_shows_a_job_that_fails(tmp_path):
    from ctc_tui.tui.widgets.jobpanel import JobPanel

    finished = write_run(tmp_path / "a")  # done, but no preset.yaml: lm build fails with its one line
    lost = tmp_path / "b"
    lost.mkdir()
    (lost / "events.jsonl").write_text(
        json.dumps({"type": "state", "t": 1.7e9, "rank": 0, "state": "training"})
    )
    app = make_app(runs_root=tmp_path)
    ended: list[JobPanel.Ended] = []
    hook = lambda m: ended.append(m) if isinstance(m, JobPanel.Ended) and m not in ended else None  # noqa: E731
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        table.focus()
        table.move_cursor(row=[r.path for r in app.screen.runs].index(lost))
        await pilot.press("e")
        await pilot.pause()
        panel = app.screen.query_one("#job", JobPanel)
        assert not panel.running and not panel.display
        notes = [n.message for n in app._notifications]
        assert any("Evaluate: b is lost; only a finished run (done)" in n for n in notes), notes
        table.move_cursor(row=[r.path for r in app.screen.runs].index(finished))
        await pilot.press("l")
        while not ended:
            await pilot.pause(0.1)
        await settle(pilot)
        assert ended[0].code == 2 and "is not a run dir (no preset.yaml)" in ended[0].last
        assert "failed (exit 2)" in plain(pilot, "#job")
        notes = [n.message for n in app._notifications]
        assert any(n.startswith("Build LM a: failed: error:") for n in notes), notes
