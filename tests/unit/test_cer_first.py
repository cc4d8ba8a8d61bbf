"""CER first for text written without spaces: the eval event's ``primary`` field, the run state, the
plain and live views, ``ctc-tui runs``, ``ctc-tui eval``'s table, and ``ctc-tui check``'s text findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc_tui.cli.lm import print_table
from ctc_tui.core.events import BadEvent, validate
from ctc_tui.core.preset import load_preset
from ctc_tui.runs.discovery import RunSummary
from ctc_tui.runs.headless import PlainPrinter, print_outcome, render
from ctc_tui.runs.state import RunState
from ctc_tui.sources.textcheck import check_text, report_lines
from tests.unit.helpers import console, ev, fed

REPO = Path(__file__).resolve().parents[2]

CER_EVALS = [
    ev("eval", 0, step=5, wer=1.0, cer=0.5, primary="cer"),
    ev("eval", 0, step=10, wer=1.0, cer=0.25, primary="cer"),
]


def test_the_eval_event_may_name_its_primary_metric_and_nothing_else():
    event = ev("eval", 0, step=1, wer=0.5, primary="cer")
    assert validate(event) == event
    with pytest.raises(BadEvent, match="primary"):
        validate(ev("eval", 0, step=1, wer=0.5, primary="bleu"))


def test_run_state_follows_the_primary_metric():
    state = fed(*CER_EVALS)
    assert state.primary == "cer" and state.secondary == "wer"
    assert (
        state.best("cer") == 0.25
        and state.last("cer") == 0.25
        and state.curve("cer") == [(5, 0.5), (10, 0.25)]
    )
    assert fed(ev("eval", 0, step=1, wer=0.5, cer=0.2)).primary == "wer"  # absent: WER, as before
    assert fed(ev("eval", 0, step=1, wer=0.5, primary="mer")).primary == "wer"  # not a metric: ignored


def test_views_put_cer_first():
    out = console()
    printer = PlainPrinter(out, every=0.0)
    state = RunState()
    for event in CER_EVALS[:1]:
        state.feed(event)
        printer(event, state)
    assert out.export_text().splitlines() == ["eval step 5: CER 0.5000 WER 1.0000"]
    live = console()
    live.print(render(fed(*CER_EVALS)))
    assert "eval CER 0.2500 at step 10" in live.export_text()
    closing = console()
    print_outcome(closing, fed(ev("state", 0, state="done"), *CER_EVALS, ev("exit", -1, code=0)), "RUN")
    assert closing.export_text().splitlines()[0] == "done in 00:00: eval CER 0.2500, WER 1.0000"


def test_runs_table_shows_the_best_primary_figure():
    run = RunSummary(
        Path("r"), "done", 1, 10, 1.0, 1.0, None, [], primary="cer", best_cer=0.25, cer_curve=[(10, 0.25)]
    )
    assert run.best == 0.25 and run.best_text == "0.2500 CER" and run.curve == [(10, 0.25)]
    wer_run = RunSummary(Path("r"), "done", 1, 10, 0.5, 1.0, None, [(10, 0.5)])
    assert wer_run.best_text == "0.5000" and wer_run.curve == [(10, 0.5)]


def test_eval_table_puts_cer_first_for_text_without_spaces(capsys):
    row = {"split": "test", "clips": 3, "hours": 0.01, "primary": "cer", "cer": 0.125, "wer": 1.0}
    print_table([row])
    header, values = capsys.readouterr().out.splitlines()[:2]
    assert header.index("CER") < header.index("WER") and values.index("0.1250") < values.index("1.0000")
    print_table([{**row, "primary": "wer"}])
    header = capsys.readouterr().out.splitlines()[0]
    assert header.index("WER") < header.index("CER")


def _corpus(root: Path, texts: list[str]) -> Path:
    split = root / "train"
    split.mkdir(parents=True)
    lines = ["file_name,text"]
    for i, text in enumerate(texts):
        (split / f"{i}.wav").write_bytes(b"")
        lines.append(f'{i}.wav,"{text}"')
    (split / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _preset(root: Path, *overrides: str):
    return load_preset(
        REPO / "presets" / "demo-cpu.yaml",
        [
            f"data.dataset_dir={root}",
            "data.eval_split_name=train",
            "data.remove_punctuation=true",
            *overrides,
        ],
    )


def test_check_flags_rare_characters_with_a_transcript_and_the_ways_out(tmp_path):
    root = _corpus(tmp_path / "de", ["„Straße“ ist schön"] * 80 + ["hallo wеlt"])  # a Cyrillic е
    (finding,) = check_text(_preset(root))
    assert finding.level == "warning" and finding.key == "data.rare_char_threshold"
    assert "U+0435 CYRILLIC SMALL LETTER IE 1x, e.g. in 'hallo wеlt'" in finding.message
    assert "data.char_map" in finding.message and "data.drop_rare_char_clips=true" in finding.message
    assert check_text(_preset(root, "data.drop_rare_char_clips=true")) == []
    lines = report_lines(_preset(root))
    assert lines[0] == "vocabulary of 81 training transcript(s), normalised as the run will:"
    assert any(line.strip().startswith("80  'ß' U+00DF LATIN SMALL LETTER SHARP S") for line in lines)
    small = _corpus(tmp_path / "small", ["„Straße“ ist schön"] * 4 + ["hallo wеlt"])
    assert check_text(_preset(small)) == []  # too little text to call anything rare: no warning
    assert any("rare" in line for line in report_lines(_preset(small)))  # the report still flags it
    assert not any("„" in line for line in lines)


def test_check_says_a_models_vocabulary_does_not_fit_and_what_auto_will_do(tmp_path):
    root = _corpus(tmp_path / "ja", ["きょうはいいてんき"] * 3)
    model = tmp_path / "model"
    model.mkdir()
    (model / "vocab.json").write_text('{"a": 0, "|": 1, "[UNK]": 2, "[PAD]": 3}')
    (finding,) = check_text(_preset(root, "model.architecture=null", f"model.model_name_or_path={model}"))
    assert finding.key == "model.vocabulary" and "new vocabulary will be built" in finding.message
    assert "き 6, い 6, ょ 3" in finding.message
    kept = check_text(
        _preset(root, "model.architecture=null", f"model.model_name_or_path={model}", "model.vocabulary=keep")
    )
    assert "become the unknown token" in kept[0].message
    lines = report_lines(_preset(root, "model.architecture=null", f"model.model_name_or_path={model}"))
    assert "text written without spaces: CER is the primary metric; no word delimiter is forced" in lines
    assert lines[-1].endswith("'s vocabulary: lacks き 6, い 6, ょ 3, う 3, は 3, て 3, ん 3")
