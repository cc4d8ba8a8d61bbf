"""The ctc-tui app: the wizard that writes a preset (its steps: ``ctc_tui.wizard.steps``), the live dashboard,
the runs screen. Screens never import each other: the app builds each step from its row in the steps
table, and shows the dashboard or the runs screen when a screen asks for it by a message."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import RenderableType
from textual import work
from textual.app import App

from ctc_tui.core.problems import PresetError
from ctc_tui.tui.messages import BadPreset, DataChecked, OpenRun, ShowRuns
from ctc_tui.tui.stepscreen import BACK, NEXT, StepScreen
from ctc_tui.wizard.draft import Draft
from ctc_tui.wizard.steps import STEP_TITLES, step_at

if TYPE_CHECKING:
    from ctc_tui.sources.scan import DataScan

# The screens are imported when first shown: the first screen appears sooner.


class CtcTuiApp(App[str | None]):
    """``mode`` is ``wizard`` (optionally from ``draft``), ``dashboard`` (``run_dir``) or ``runs``."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "ctc-tui"

    def __init__(
        self,
        mode: str = "wizard",
        draft: Draft | None = None,
        save_path: str | None = None,
        run_dir: Path | None = None,
        runs_root: Path = Path("runs"),
        devices_text: RenderableType | None = None,
    ):
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
            self.show_dashboard(self.run_dir)
        elif self.mode == "runs":
            self.show_runs(self.runs_root)
        else:
            self.run_wizard()

    def show_dashboard(self, run_dir: Path):
        """Push the dashboard of ``run_dir`` (awaitable: it is mounted once awaited)."""
        from ctc_tui.tui.screens.dashboard import DashboardScreen  # imported when first shown

        return self.push_screen(DashboardScreen(run_dir))

    def show_runs(self, root: Path):
        """Push the runs screen of the runs under ``root`` (awaitable: it is mounted once awaited)."""
        from ctc_tui.tui.screens.runs import RunsScreen  # imported when first shown

        return self.push_screen(RunsScreen(root))

    def on_show_runs(self, message: ShowRuns) -> None:
        self.show_runs(message.root)

    def on_open_run(self, message: OpenRun) -> None:
        self.show_dashboard(message.run_dir)

    def on_data_checked(self, message: DataChecked) -> None:
        self.scan = message.scan

    def on_bad_preset(self, message: BadPreset) -> None:
        self.bad_preset = message.error
        self.exit(return_code=2)

    def make_step(self, index: int) -> StepScreen:
        """The screen of the step at ``index`` (from its row in the steps table), given the draft and the
        context its row names."""
        assert self.draft is not None
        step = step_at(index)
        screen = step.screen_class()
        return screen(self.draft, **{name: self.step_context(name) for name in step.context})

    def step_context(self, name: str):
        """What a step's screen needs besides the draft, by the name its row in the steps table gives."""
        if name == "transcripts":  # the text step previews what the data step's check read
            return self.scan.splits[0].texts if self.scan and self.scan.splits else []
        if name == "devices_text":
            return self.devices_text
        if name == "default_path":
            return self.save_path
        raise KeyError(
            f"no step context named {name!r}: the steps table names one CtcTuiApp.step_context "
            "does not provide (add it there)"
        )

    @work(exclusive=True, group="wizard")
    async def run_wizard(self) -> None:
        while True:
            result = await self.push_screen_wait(self.make_step(self.step_index))
            # Imported after the first step is up: the first screen appears sooner.
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
                    await self.show_dashboard(run_dir)
                    return

    async def launch(self, preset_path: Path) -> Path | None:
        # The run service loads the preset model and the launchers: only once a run is launched.
        from ctc_tui.runs import service

        self.notify(f"checking and launching {preset_path.name}…")
        try:
            started = await asyncio.to_thread(service.start, service.StartRequest(preset=preset_path))
            for warning in started.warnings:
                self.notify(warning, severity="warning", timeout=10)
            return started.run_dir
        except PresetError as exc:
            self.notify(exc.render(), severity="error", timeout=15)
        except service.RunError as exc:
            self.notify(str(exc), severity="error", timeout=15)
        except (
            RuntimeError
        ) as exc:  # client.StartFailed: the supervisor did not start; its log tail is in the message
            self.notify(str(exc)[-600:], severity="error", timeout=15)
        return None
