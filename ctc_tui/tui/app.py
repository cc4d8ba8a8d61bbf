"""The ctc-tui app: the seven-step wizard that writes a preset, the live dashboard, the runs screen."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import RenderableType
from textual import work
from textual.app import App

from ctc_tui.core.problems import PresetError
from ctc_tui.tui.draft import Draft
from ctc_tui.tui.messages import BadPreset, DataChecked
from ctc_tui.tui.screens.model_step import ModelStep
from ctc_tui.tui.screens.step import BACK, NEXT, STEP_TITLES, StepScreen

if TYPE_CHECKING:
    from ctc_tui.sources.scan import DataScan

# The other screens are imported when first shown: the first screen appears sooner.


class CtcTuiApp(App[str | None]):
    """``mode`` is ``wizard`` (optionally from ``draft``), ``dashboard`` (``run_dir``) or ``runs``."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "ctc-tui"

    def __init__(self, mode: str = "wizard", draft: Draft | None = None, save_path: str | None = None,
                 run_dir: Path | None = None, runs_root: Path = Path("runs"), devices_text: RenderableType | None = None):
        super().__init__()
        self.mode = mode
        self.draft = draft
        self.save_path = save_path or "my-preset.yaml"
        self.run_dir = run_dir
        self.runs_root = runs_root
        self.devices_text = devices_text
        self.scan: DataScan | None = None
        self.step_index = 0
        self.bad_preset: PresetError | None = None  # the starting preset, found invalid: the app ends

    def on_mount(self) -> None:
        if self.mode == "dashboard" and self.run_dir is not None:
            from ctc_tui.tui.screens.dashboard import DashboardScreen

            self.push_screen(DashboardScreen(self.run_dir))
        elif self.mode == "runs":
            from ctc_tui.tui.screens.runs import RunsScreen

            self.push_screen(RunsScreen(self.runs_root))
        else:
            self.run_wizard()

    def on_data_checked(self, message: DataChecked) -> None:
        self.scan = message.scan

    def on_bad_preset(self, message: BadPreset) -> None:
        self.bad_preset = message.error
        self.exit(return_code=2)

    def make_step(self, index: int) -> StepScreen:
        draft = self.draft
        assert draft is not None
        if index == 0:
            return ModelStep(draft)
        from ctc_tui.tui.screens.data_step import DataStep, TextStep
        from ctc_tui.tui.screens.form_steps import CardsStep, PrecisionStep, TrainingStep
        from ctc_tui.tui.screens.review_step import ReviewStep

        if index == 1:
            return DataStep(draft)
        if index == 2:
            texts = self.scan.splits[0].texts if self.scan and self.scan.splits else []
            return TextStep(draft, texts)
        if index == 3:
            return CardsStep(draft, self.devices_text)
        if index == 4:
            return PrecisionStep(draft)
        if index == 5:
            return TrainingStep(draft)
        if index == 6:
            return ReviewStep(draft, self.save_path)
        return ModelStep(draft)

    @work(exclusive=True, group="wizard")
    async def run_wizard(self) -> None:
        while True:
            result = await self.push_screen_wait(self.make_step(self.step_index))
            # Imported after the first step is up: the first screen appears sooner.
            from ctc_tui.tui.screens.dashboard import DashboardScreen
            from ctc_tui.tui.screens.review_step import ReviewResult

            if result == BACK:
                self.step_index = max(0, self.step_index - 1)
            elif result == NEXT:
                self.step_index = min(len(STEP_TITLES) - 1, self.step_index + 1)
            elif isinstance(result, ReviewResult):
                if result.action == "saved":
                    self.exit(f"saved {result.path}\nrun it with: ctc-tui run {result.path}")
                    return
                run_dir = await self.launch(result.path)
                if run_dir is not None:
                    self.run_dir = run_dir
                    await self.push_screen(DashboardScreen(run_dir))
                    return

    async def launch(self, preset_path: Path) -> Path | None:
        from ctc_tui import runctl
        from ctc_tui.cli import CliError

        self.notify(f"checking and launching {preset_path.name}…")
        try:
            run_dir, warnings = await asyncio.to_thread(runctl.start, preset_path)
            for warning in warnings:
                self.notify(warning, severity="warning", timeout=10)
            return run_dir
        except PresetError as exc:
            self.notify(exc.render(), severity="error", timeout=15)
        except CliError as exc:
            self.notify(str(exc), severity="error", timeout=15)
        except RuntimeError as exc:  # the supervisor did not start; its log tail is in the message
            self.notify(str(exc)[-600:], severity="error", timeout=15)
        return None
