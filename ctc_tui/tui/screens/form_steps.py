"""Steps 4 to 6: cards and launcher, precision and Gaudi options, training settings."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Label, Select, Static

from ctc_tui.tui.stepscreen import StepScreen
from ctc_tui.wizard.draft import Draft


class CardsStep(StepScreen):
    LABELS = {
        "gaudi.use_habana": "HPU (Gaudi)",
        "training.use_cpu": "force CPU",
        "launch.world_size": "cards per node",
        "launch.deepspeed": "DeepSpeed config",
    }
    HELP = "One rank per card. mpi and deepspeed are the seed's launchers; a hostfile spans several nodes."

    def __init__(self, draft: Draft, devices_text: RenderableType | None = None):
        super().__init__(draft)
        self.devices_text = devices_text

    def compose_extra_top(self) -> ComposeResult:
        yield Static(self.devices_text or Text("detecting devices…", style="dim"), id="devices")

    def on_mount(self) -> None:
        super().on_mount()
        if self.devices_text is None:
            self._detect()

    @work(thread=True, exclusive=True, group="devices", exit_on_error=False)
    def _detect(self) -> None:
        text = describe_devices()
        self.app.call_from_thread(self.query_one("#devices", Static).update, text)


def describe_devices():
    """A table of the cards found on this machine (HPUs, GPUs) and its CPU."""
    from ctc_tui import devices

    return devices.render_table(devices.detect())


#: The Gaudi execution modes the precision step offers, and the switches each one sets.
GAUDI_MODES = {
    "eager-compile": {
        "gaudi.use_lazy_mode": False,
        "training.torch_compile": True,
        "training.torch_compile_backend": "hpu_backend",
        "gaudi.use_hpu_graphs_for_training": False,
        "gaudi.use_hpu_graphs_for_inference": False,
    },
    "lazy": {
        "gaudi.use_lazy_mode": True,
        "training.torch_compile": False,
        "training.torch_compile_backend": "",
    },
}
MODE_CHOICES = [
    ("eager + torch.compile (recommended: Intel's default path, PT_HPU_LAZY_MODE=0)", "eager-compile"),
    ("lazy mode (legacy: PT_HPU_LAZY_MODE=1, HPU graphs)", "lazy"),
]


def gaudi_mode(lazy: Any, compiled: Any) -> Any:
    """The mode a draft's switches amount to (Select.NULL for eager without compile)."""
    if lazy:
        return "lazy"
    return "eager-compile" if compiled else Select.NULL


class PrecisionStep(StepScreen):
    LABELS = {
        "training.bf16": "bf16",
        "model.attn_implementation": "attention (sdpa)",
        "training.torch_compile_backend": "compile backend",
    }
    HELP = (
        "bf16 is the seed's precision on Gaudi. The gaudi options only apply when HPU is on. Gaudi mode: "
        "eager + torch.compile is what Intel recommends now; lazy mode is the legacy path."
    )

    def compose_extra_top(self) -> ComposeResult:
        mode = gaudi_mode(self.draft.get("gaudi.use_lazy_mode"), self.draft.get("training.torch_compile"))
        yield Label("Gaudi mode", classes="field-label")
        yield Select(MODE_CHOICES, value=mode, allow_blank=True, prompt="(as set below)", id="gaudi-mode")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "gaudi-mode" or event.value not in GAUDI_MODES:
            return
        for key, value in GAUDI_MODES[event.value].items():
            if key == "training.torch_compile_backend" and not self.draft.get("gaudi.use_habana"):
                value = ""  # hpu_backend exists on Gaudi only; elsewhere torch's default (inductor)
            widget = self.query_one("#f-" + key.replace(".", "--"))
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
            elif isinstance(widget, Input):
                widget.value = str(value)


class TrainingStep(StepScreen):
    LABELS = {
        "training.per_device_train_batch_size": "train batch / card",
        "training.per_device_eval_batch_size": "eval batch / card",
        "training.gradient_accumulation_steps": "grad accumulation",
    }
    HELP = "max_steps -1 trains for num_train_epochs. output_dir may use {preset} and {timestamp}."
