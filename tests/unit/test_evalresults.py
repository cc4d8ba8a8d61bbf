"""``ctc-tui eval``'s results as the views read them (runs.evalresults), and the runs screen's actions on a
finished run as ctc-tui commands (runs.actions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ctc_tui.runs import actions
from ctc_tui.runs.discovery import RunSummary
from ctc_tui.runs.evalresults import MAX_BYTES, read_results, summary


def write(run_dir: Path, name: str, payload: object) -> None:
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    (run_dir / "eval" / name).write_text(payload if isinstance(payload, str) else json.dumps(payload))


def test_results_are_read_by_split_and_bad_files_are_left_out(tmp_path):
    write(tmp_path, "test.clean.json", {"split": "test.clean", "clips": 40, "wer": 0.45, "cer": 0.2})
    write(tmp_path, "eval.json", {"split": "eval", "clips": 12, "wer": 0.4123, "wer_lm": 0.3351})
    write(tmp_path, "torn.json", '{"split": "x", "wer": 0.')
    write(tmp_path, "nan.json", '{"split": "y", "wer": NaN}')
    write(tmp_path, "list.json", [1, 2])
    write(tmp_path, "big.json", json.dumps({"split": "z", "wer": 0.1, "pad": "x" * MAX_BYTES}))
    write(tmp_path, "eval.json.tmp", {"split": "tmp", "wer": 0.9})
    results = read_results(tmp_path)
    assert [r.split for r in results] == ["eval", "test.clean"]
    assert results[0].wer_lm == pytest.approx(0.3351) and results[1].wer_lm is None
    assert summary(results) == "eval 0.412 (LM 0.335), test.clean 0.450"
    assert read_results(tmp_path / "nowhere") == [] and summary([]) == "-"


def test_many_results_are_counted_and_split_names_are_made_printable(tmp_path):
    for i in range(5):
        write(tmp_path, f"s{i}.json", {"split": f"s{i}", "wer": 0.1 * i})
    write(tmp_path, "evil.json", {"split": "a\x1b[2Jb", "wer": 0.5})
    text = summary(read_results(tmp_path))
    assert text.endswith("+3 more") and "\x1b" not in text and "a\\x1b[2Jb 0.500" in text


def run(tmp_path: Path, state: str = "done", problem: str | None = None) -> RunSummary:
    return RunSummary(tmp_path, state, 1, 12, 0.9, 60.0, 1.7e9, [], problem=problem)


def test_actions_are_ctc_tui_commands_on_finished_runs_only(tmp_path):
    py = sys.executable
    assert actions.command("lm", tmp_path) == [py, "-m", "ctc_tui", "lm", "build", str(tmp_path)]
    evaluate = actions.command("eval", tmp_path)
    assert evaluate[3:] == ["eval", str(tmp_path), "--json", "--progress", "events"]
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "lm.arpa").write_text("\\data\\\n")
    assert "--lm" in actions.command("eval", tmp_path)  # once built, evaluation decodes with the LM too
    out = tmp_path.parent / "m"
    assert actions.command("package", tmp_path, out)[3:] == ["package", str(tmp_path), str(out)]
    with pytest.raises(ValueError, match="needs an output folder"):
        actions.command("package", tmp_path)
    assert actions.default_output(tmp_path) == tmp_path.parent / f"{tmp_path.name}-model"
    assert actions.refusal("eval", run(tmp_path)) is None
    assert "is training; only a finished run (done)" in actions.refusal("lm", run(tmp_path, "training"))
    assert "untrusted" in actions.refusal("package", run(tmp_path, "untrusted", "writable by others"))


def test_runs_shows_the_results_column_once_a_run_has_results(tmp_path, capsys, monkeypatch):
    from ctc_tui import cli

    monkeypatch.setenv("COLUMNS", "200")
    for name in ("a", "b"):
        (tmp_path / name).mkdir(mode=0o700)
        (tmp_path / name / "events.jsonl").write_text(
            json.dumps({"type": "exit", "t": 1.7e9, "rank": -1, "code": 0, "state": "done"}) + "\n"
        )
    assert cli.main(["runs", str(tmp_path)]) == 0
    assert "eval WER" not in capsys.readouterr().out  # no results anywhere: the table as before
    write(tmp_path / "b", "eval.json", {"split": "eval", "wer": 0.25, "wer_lm": 0.125})
    assert cli.main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "eval WER (LM)" in lines[0]
    row_b = next(line for line in lines if line.startswith("b "))
    row_a = next(line for line in lines if line.startswith("a "))
    assert "eval 0.250 (LM 0.125)" in row_b and " - " in row_a
