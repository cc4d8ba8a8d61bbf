"""Steps 2 and 3: where the data is (with a data check), and how its text is cleaned (live preview)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Input, Select, Static

from ctc_tui.core.textnorm import KEEP_PUNCTUATION, UNICODE_FORMS, build_vocab, is_spaced, normaliser_for
from ctc_tui.core.vocabreport import VocabReport, describe_char, vocab_report
from ctc_tui.sources import local_sources
from ctc_tui.sources.base import SourceOptions
from ctc_tui.sources.datacheck import scan
from ctc_tui.sources.scan import DataScan
from ctc_tui.tui.messages import DataChecked
from ctc_tui.tui.stepscreen import StepScreen
from ctc_tui.tui.widgets.dialogs import FolderPicker
from ctc_tui.wizard.draft import Draft

BAR = "█"


def _configs_line(result: DataScan) -> Text:
    return Text.assemble(
        ("locales ", "bold"), ", ".join(result.configs), (" (data.dataset_config_name picks one)", "dim")
    )


def _table_lines(result: DataScan) -> list[Text]:
    """The TSV/CSV columns of each split's table (once when they agree) and the rows left out."""
    lines: list[Text] = []
    columns = {tuple(s.columns) for s in result.splits if s.columns}
    for cols in sorted(columns):
        lines.append(Text.assemble(("columns ", "bold"), "  ".join(cols)))
    lines.extend(Text("! " + note, style="yellow") for s in result.splits for note in s.notes)
    return lines


def render_scan(result: DataScan) -> Group | Text:
    if result.errors and not result.splits:
        errors = Text("\n".join("✗ " + e for e in result.errors), style="red")
        return Group(_configs_line(result), errors) if result.configs else errors
    table = Table(box=None, pad_edge=False, title="data check", title_justify="left", title_style="bold")
    for name, justify in (
        ("split", "left"),
        ("clips", "right"),
        ("hours", "right"),
        ("sample rates", "left"),
        ("unreadable", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for split in result.splits:
        rates = ", ".join(
            f"{r} Hz" + (f" ×{n}" if len(split.sample_rates) > 1 else "")
            for r, n in split.sample_rates.most_common()
        )
        note = "" if split.measured == split.clips else f" (from {split.measured} sampled)"
        table.add_row(
            split.split, str(split.clips), f"{split.hours:.2f}{note}", rates or "-", str(split.unreadable)
        )
    parts: list = [_configs_line(result), table] if result.configs else [table]
    parts.extend(_table_lines(result))
    if result.splits and result.splits[0].durations:
        hist = result.splits[0].histogram()
        peak = max(c for _, c in hist) or 1
        lines = Text(f"durations of {result.splits[0].split}\n", style="bold")
        for label, count in hist:
            lines.append(f"{label:>10} ", style="dim")
            lines.append(BAR * max(0, round(count / peak * 30)), style="cyan")
            lines.append(f" {count}\n")
        parts.append(lines)
        rates = set().union(*(s.sample_rates for s in result.splits))
        if rates - {16000}:
            parts.append(
                Text(
                    f"note: {', '.join(map(str, sorted(rates - {16000})))} Hz audio is resampled to "
                    "16000 Hz (the reference would refuse it)",
                    style="yellow",
                )
            )
    if result.vocab:
        chars = "".join(k for k in result.vocab if len(k) == 1)
        parts.append(
            Text.assemble(
                ("vocabulary ", "bold"), f"({len(result.vocab)} tokens): ", (chars, "green"), " + [UNK] [PAD]"
            )
        )
    parts.extend(Text("✗ " + e, style="red") for e in result.errors)
    return Group(*parts)


class DataStep(StepScreen):
    LABELS = {
        "data.dataset_dir": "data folder",
        "data.train_split_name": "train split",
        "data.eval_split_name": "eval split",
    }
    HELP = (
        "Local data (LibriSpeech tree, audio folder, manifest, Common Voice) or a hub dataset. "
        "Check data reads the headers."
    )

    def compose_extra_top(self) -> ComposeResult:
        with Horizontal(id="data-actions"):
            yield Button("Browse…", id="browse")
            yield Button("Check data", id="check", variant="success")

    def compose_extra(self) -> ComposeResult:
        yield Static("", id="scan")

    def on_mount(self) -> None:
        super().on_mount()
        if self.draft.get("data.source") in local_sources() and self.draft.get("data.dataset_dir"):
            self.run_check()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "browse":
            event.stop()
            self.app.push_screen(
                FolderPicker(self.query_one("#f-data--dataset_dir", Input).value), self._picked
            )
        elif event.button.id == "check":
            event.stop()
            self.run_check()
        else:
            super().on_button_pressed(event)

    def _picked(self, path: str | None) -> None:
        if path:
            self.query_one("#f-data--dataset_dir", Input).value = path
            self.run_check()

    @on(Select.Changed, "#f-data--source")
    def _source_changed(self) -> None:
        self.query_one("#scan", Static).update("")

    def run_check(self) -> None:
        self.collect()
        d = self.draft
        self.query_one("#scan", Static).update(Text("checking data…", style="dim"))
        self._scan(
            d.get("data.source"),
            d.get("data.dataset_dir"),
            [d.get("data.train_split_name"), d.get("data.eval_split_name")],
            d.get("data.audio_column_name"),
            d.get("data.text_column_name"),
            d.get("data.chars_to_ignore"),
            d.get("data.do_lower_case"),
            SourceOptions(
                config_name=d.get("data.dataset_config_name") or None,
                audio_dir=d.get("data.audio_dir") or None,
                min_up_votes=d.get("data.min_up_votes"),
                max_down_votes=d.get("data.max_down_votes"),
            ),
        )

    @work(thread=True, exclusive=True, group="data-check", exit_on_error=False)
    def _scan(self, source, folder, splits, audio_col, text_col, chars, lower, options) -> None:
        result = scan(
            source,
            folder,
            [s for s in splits if s],
            audio_col or "audio",
            text_col or "text",
            chars,
            bool(lower),
            options=options,
        )
        self.app.call_from_thread(self._scanned, result)

    def _scanned(self, result: DataScan) -> None:
        self.query_one("#scan", Static).update(render_scan(result))
        self.post_message(DataChecked(result))


class TextStep(StepScreen):
    LABELS = {
        "data.chars_to_ignore": "characters to remove",
        "data.do_lower_case": "lower-case",
        "data.remove_punctuation": "remove all punctuation",
        "data.unicode_normalization": "Unicode form",
    }
    HELP = (
        "Each listed character is removed literally ('-' and ' are kept unless listed); 'remove all "
        "punctuation' also takes „ “ « » … – ¿ 、 。 and the like. Preview and vocabulary below."
    )

    def __init__(self, draft: Draft, transcripts: list[str] | None = None):
        super().__init__(draft)
        self.transcripts = transcripts or []
        self.rows: list[tuple[str, str]] = []  # the preview's (before, after) pairs
        self.vocab: dict[str, int] = {}
        self.report: VocabReport | None = None

    def compose_extra(self) -> ComposeResult:
        yield Static("", id="preview")

    def on_mount(self) -> None:
        super().on_mount()
        self._preview()

    def _rules(self) -> SimpleNamespace:
        """The text rules as the form has them now (the draft for the fields the form does not show)."""
        d = self.draft
        form = self.query_one("#f-data--unicode_normalization", Select).value
        return SimpleNamespace(
            chars_to_ignore=list(self.query_one("#f-data--chars_to_ignore", Input).value.replace(" ", "")),
            do_lower_case=self.query_one("#f-data--do_lower_case", Checkbox).value,
            remove_punctuation=self.query_one("#f-data--remove_punctuation", Checkbox).value,
            unicode_normalization=form if form in UNICODE_FORMS else "NFC",
            keep_punctuation=d.get("data.keep_punctuation") or KEEP_PUNCTUATION,
            char_map=d.get("data.char_map") or {},
            turkic_casing=bool(d.get("data.turkic_casing")),
            space_separated=d.get("data.space_separated"),
            rare_char_threshold=d.get("data.rare_char_threshold") or 3,
        )

    @on(Input.Changed, "#f-data--chars_to_ignore")
    @on(Checkbox.Changed, "#f-data--do_lower_case")
    @on(Checkbox.Changed, "#f-data--remove_punctuation")
    @on(Select.Changed, "#f-data--unicode_normalization")
    def _preview(self) -> None:
        rules = self._rules()
        normalise = normaliser_for(rules)
        if not self.transcripts:
            self.query_one("#preview", Static).update(
                Text(
                    "no transcripts to preview: run Check data on the previous step (local data)", style="dim"
                )
            )
            return
        table = Table(box=None, pad_edge=False, title="preview", title_justify="left", title_style="bold")
        table.add_column("before", overflow="fold", ratio=1)
        table.add_column("after", overflow="fold", style="green", ratio=1)
        self.rows = [
            (text, normalise(text)) for text in _examples(self.transcripts, set(rules.chars_to_ignore))
        ]
        for before, after in self.rows:
            table.add_row(before, after)
        texts = [normalise(t) for t in self.transcripts]
        spaced = is_spaced(rules, texts)
        vocab = self.vocab = build_vocab(texts, spaced=spaced)
        letters = "".join(k for k in vocab if len(k) == 1)
        footer = Text.assemble(("vocabulary ", "bold"), f"({len(vocab)} tokens): ", (letters, "green"))
        self.report = vocab_report(texts, rules.rare_char_threshold)
        parts: list[Any] = [table, footer]
        if self.report.rare:
            shown = "; ".join(
                f"{describe_char(ch)} ×{self.report.counts[ch]} in {self.report.examples[ch][0]!r}"
                for ch in self.report.rare[:4]
            )
            parts.append(Text(f"rare (fewer than {rules.rare_char_threshold}): {shown}", style="yellow"))
        if not spaced:
            parts.append(Text("text without spaces: CER is the primary metric", style="cyan"))
        self.query_one("#preview", Static).update(Group(*parts))


def _examples(texts: list[str], chars: set[str], count: int = 8) -> list[str]:
    """Transcripts worth showing: those with punctuation or symbols first, then the rest."""
    special = [t for t in texts if any(not (c.isalnum() or c.isspace()) for c in t)]
    rest = [t for t in texts if t not in special]
    seen: list[str] = []
    for text in special + rest:
        if text not in seen:
            seen.append(text)
        if len(seen) >= count:
            break
    return seen
