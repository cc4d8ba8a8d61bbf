"""The wizard's steps, in order, from one table: each step's title, the preset keys it edits, the screen
that shows it and what that screen needs besides the draft.

Everything else derives from ``STEPS``: the breadcrumb, each screen's ``INDEX`` and ``KEYS``, the app's
step construction and ``ctc-tui init``'s questions (``STEP_KEYS``). Adding a step is one row here and its
screen. Screens are named as ``"module:Class"`` strings and imported only when shown: the first screen
is drawn before the preset model (pydantic) is imported. This module imports only the standard library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

SCREENS = "ctc_tui.tui.screens"


@dataclass(frozen=True)
class Step:
    """One wizard step. ``context``: the screen's keyword arguments besides the draft, by name (the app
    knows how to fill each one: see ``CtcTuiApp.step_context``)."""

    title: str
    keys: tuple[str, ...]
    screen: str  # "package.module:Class", imported when the step is first shown
    context: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.screen.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.screen.partition(":")[2]

    def screen_class(self) -> type:
        """The screen's class, imported now (the first time this step is shown)."""
        return getattr(importlib.import_module(self.module), self.class_name)


STEPS: tuple[Step, ...] = (
    Step("Model", ("model.model_name_or_path", "model.architecture"), f"{SCREENS}.model_step:ModelStep"),
    Step(
        "Data",
        (
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
        ),
        f"{SCREENS}.data_step:DataStep",
    ),
    Step(
        "Text",
        (
            "data.chars_to_ignore",
            "data.do_lower_case",
            "data.remove_punctuation",
            "data.unicode_normalization",
        ),
        f"{SCREENS}.data_step:TextStep",
        context=("transcripts",),
    ),
    Step(
        "Cards",
        (
            "gaudi.use_habana",
            "training.use_cpu",
            "launch.launcher",
            "launch.world_size",
            "launch.hostfile",
            "launch.master_port",
            "launch.deepspeed",
        ),
        f"{SCREENS}.form_steps:CardsStep",
        context=("devices_text",),
    ),
    Step(
        "Precision",
        (
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
        ),
        f"{SCREENS}.form_steps:PrecisionStep",
    ),
    Step(
        "Training",
        (
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
        ),
        f"{SCREENS}.form_steps:TrainingStep",
    ),
    Step("Review", (), f"{SCREENS}.review_step:ReviewStep", context=("default_path",)),
)

STEP_TITLES: tuple[str, ...] = tuple(step.title for step in STEPS)

#: The preset keys each step edits, by title (steps that edit none, like the review, are left out): the
#: wizard's forms and ``ctc-tui init``'s questions, in this order.
STEP_KEYS: dict[str, list[str]] = {step.title: list(step.keys) for step in STEPS if step.keys}


def step_at(index: int) -> Step:
    """The step at ``index``; the first one for an index out of range (as the wizard always did)."""
    return STEPS[index] if 0 <= index < len(STEPS) else STEPS[0]


def index_of_screen(screen: str) -> int | None:
    """The index of the step shown by ``screen`` (``"module:Class"``), or None for a screen in no row."""
    for index, step in enumerate(STEPS):
        if step.screen == screen:
            return index
    return None
