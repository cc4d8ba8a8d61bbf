"""The wizard's steps table (ctc_tui.wizard.steps): one row per step, and everything derived from it (titles,
preset keys, screen classes and their INDEX/KEYS, the app's step construction, the breadcrumb); and the
rule that the screens never import each other. Plain tests: no Pilot, no running app."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest
from rich.text import Text

import ctc_tui.tui
from ctc_tui.wizard import steps
from ctc_tui.wizard.steps import STEP_KEYS, STEP_TITLES, STEPS, Step, index_of_screen, step_at

TUI = Path(ctc_tui.tui.__file__).resolve().parent
SCREENS = TUI / "screens"

#: Where every key was before the table (STEP_KEYS in tui/draft.py): a step's keys must not move.
KEYS_BEFORE = {
    "Model": ["model.model_name_or_path", "model.architecture"],
    "Data": [
        "data.source",
        "data.dataset_dir",
        "data.dataset_name",
        "data.dataset_config_name",
        "data.train_split_name",
        "data.eval_split_name",
        "data.audio_column_name",
        "data.text_column_name",
        "data.max_duration_in_seconds",
        "data.min_duration_in_seconds",
    ],
    "Text": [
        "data.chars_to_ignore",
        "data.do_lower_case",
        "data.remove_punctuation",
        "data.unicode_normalization",
    ],
    "Cards": [
        "gaudi.use_habana",
        "training.use_cpu",
        "launch.launcher",
        "launch.world_size",
        "launch.hostfile",
        "launch.master_port",
        "launch.deepspeed",
    ],
    "Precision": [
        "training.bf16",
        "gaudi.use_lazy_mode",
        "training.torch_compile",
        "training.torch_compile_backend",
        "gaudi.use_hpu_graphs_for_training",
        "gaudi.use_hpu_graphs_for_inference",
        "gaudi.sdp_on_bf16",
        "model.attn_implementation",
        "gaudi.gaudi_config_name",
        "data.padding",
        "data.num_buckets",
        "training.throughput_warmup_steps",
    ],
    "Training": [
        "training.num_train_epochs",
        "training.max_steps",
        "training.per_device_train_batch_size",
        "training.per_device_eval_batch_size",
        "training.gradient_accumulation_steps",
        "training.learning_rate",
        "training.warmup_steps",
        "model.layerdrop",
        "model.freeze_feature_encoder",
        "training.eval_strategy",
        "training.eval_steps",
        "training.save_strategy",
        "training.save_steps",
        "training.logging_steps",
        "training.seed",
        "training.output_dir",
    ],
}
SCREEN_NAMES = {
    "Model": "ModelStep",
    "Data": "DataStep",
    "Text": "TextStep",
    "Cards": "CardsStep",
    "Precision": "PrecisionStep",
    "Training": "TrainingStep",
    "Review": "ReviewStep",
}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any level (function-level imports too), as absolute names."""
    package = "ctc_tui." + ".".join(path.relative_to(TUI.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from package import module`
    return found


# -- the table ------------------------------------------------------------------------------------------
def test_the_titles_are_unique_and_in_the_wizards_order():
    assert STEP_TITLES == ("Model", "Data", "Text", "Cards", "Precision", "Training", "Review")
    assert len(set(STEP_TITLES)) == len(STEPS)
    assert all(isinstance(step, Step) for step in STEPS)


def test_every_preset_key_stays_on_the_step_it_was_on():
    assert STEP_KEYS == KEYS_BEFORE
    assert list(STEP_KEYS) == [t for t in STEP_TITLES if t != "Review"]  # init asks in the wizard's order


def test_no_preset_key_is_edited_by_two_steps():
    keys = [key for step in STEPS for key in step.keys]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_every_key_is_a_section_and_a_field_of_the_preset_model():
    from ctc_tui.wizard.draft import SECTIONS, field_spec

    for step in STEPS:
        for key in step.keys:
            assert key.count(".") == 1 and key.split(".")[0] in SECTIONS, key
            assert field_spec(key).key == key


def test_the_rows_are_frozen():
    with pytest.raises(AttributeError):
        STEPS[0].title = "Other"  # type: ignore[misc]


def test_step_at_falls_back_to_the_first_step_out_of_range():
    assert step_at(2) is STEPS[2]
    assert step_at(len(STEPS)) is STEPS[0] and step_at(-1) is STEPS[0]


# -- the screens it names --------------------------------------------------------------------------------
def test_the_table_imports_no_screen_until_asked():
    """Screens are "module:Class" strings: the table itself imports only the standard library."""
    for module in imported_modules(Path(steps.__file__)):
        top = module.split(".")[0]
        assert top == "__future__" or top in sys.stdlib_module_names, module


def test_each_screen_is_a_step_screen_of_the_screens_package_with_its_rows_index_and_keys():
    from ctc_tui.tui.stepscreen import StepScreen

    for index, step in enumerate(STEPS):
        assert step.module.startswith("ctc_tui.tui.screens."), step.screen
        screen = step.screen_class()
        assert issubclass(screen, StepScreen), step.screen
        assert screen.__name__ == SCREEN_NAMES[step.title]
        assert screen.INDEX == index == index_of_screen(step.screen)
        assert screen.KEYS == list(step.keys)


def test_a_screen_in_no_row_keeps_its_parents_place():
    from ctc_tui.tui.screens.form_steps import TrainingStep

    class Wider(TrainingStep):
        pass

    assert index_of_screen(f"{__name__}:Wider") is None
    assert (Wider.INDEX, Wider.KEYS) == (TrainingStep.INDEX, TrainingStep.KEYS)


def test_each_rows_context_is_a_keyword_of_its_screen_that_the_app_provides():
    from ctc_tui.tui.app import CtcTuiApp

    app = CtcTuiApp(mode="wizard", save_path="mine.yaml", devices_text=Text("CPU"))
    for step in STEPS:
        parameters = inspect.signature(step.screen_class().__init__).parameters
        for name in step.context:
            assert name in parameters, (step.title, name)
            app.step_context(name)  # raises KeyError for a name it does not know
    assert app.step_context("default_path") == "mine.yaml"
    assert app.step_context("transcripts") == []  # no data check yet


def test_an_unknown_context_name_says_where_to_add_it():
    from ctc_tui.tui.app import CtcTuiApp

    with pytest.raises(KeyError, match="step_context"):
        CtcTuiApp().step_context("gpu_count")


def test_the_app_builds_every_step_from_its_row():
    from ctc_tui.tui.app import CtcTuiApp
    from ctc_tui.wizard.draft import Draft

    devices = Text("CPU")
    app = CtcTuiApp(mode="wizard", draft=Draft({}), save_path="mine.yaml", devices_text=devices)
    built = [app.make_step(index) for index in range(len(STEPS))]
    assert [type(screen).__name__ for screen in built] == list(SCREEN_NAMES.values())
    assert all(screen.draft is app.draft for screen in built)
    assert built[3].devices_text is devices and built[6].default_path == "mine.yaml"
    assert built[2].transcripts == []


# -- the breadcrumb ---------------------------------------------------------------------------------------
def test_the_breadcrumb_names_every_step_and_highlights_the_current_one():
    from ctc_tui.tui.stepscreen import breadcrumb

    text = breadcrumb(2)
    assert text.plain == "  ›  ".join(f" {i + 1} {title} " for i, title in enumerate(STEP_TITLES))
    styles = {text.plain[span.start : span.end].strip(): str(span.style) for span in text.spans}
    assert styles["3 Text"] == "bold reverse"
    assert styles["4 Cards"] == "dim" and styles["›"] == "dim"
    assert "2 Data" not in styles  # steps done are plain


# -- navigation by messages -------------------------------------------------------------------------------
def test_no_screen_module_imports_another():
    modules = {f"ctc_tui.tui.screens.{p.stem}" for p in SCREENS.glob("*.py") if p.stem != "__init__"}
    assert modules  # the check sees the screens
    for path in SCREENS.glob("*.py"):
        this = f"ctc_tui.tui.screens.{path.stem}"
        others = {m for m in imported_modules(path) if m in modules and m != this}
        assert not others, f"{path.name} imports {sorted(others)}: post a message (tui/messages.py) instead"


def test_the_app_handles_the_screens_navigation_messages():
    from ctc_tui.tui.app import CtcTuiApp
    from ctc_tui.tui.messages import OpenRun, ShowRuns

    assert ShowRuns(Path("runs")).root == Path("runs") and OpenRun("runs/a").run_dir == Path("runs/a")
    for message in (ShowRuns, OpenRun):
        assert callable(getattr(CtcTuiApp, message.handler_name, None)), message.handler_name
