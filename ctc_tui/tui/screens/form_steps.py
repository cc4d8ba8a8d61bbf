"""Steps 4 to 6: cards and launcher, precision and Gaudi options, training settings."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

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


class PrecisionStep(StepScreen):
    LABELS = {"training.bf16": "bf16", "model.attn_implementation": "attention (sdpa)"}
    HELP = "bf16 is the seed's precision on Gaudi. The gaudi options only apply when HPU is on."


class TrainingStep(StepScreen):
    LABELS = {
        "training.per_device_train_batch_size": "train batch / card",
        "training.per_device_eval_batch_size": "eval batch / card",
        "training.gradient_accumulation_steps": "grad accumulation",
    }
    HELP = "max_steps -1 trains for num_train_epochs. output_dir may use {preset} and {timestamp}."
