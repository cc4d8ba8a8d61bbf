"""The command registry (ctc_tui.cli): COMMANDS as data, the parser built from it, usage errors in-process."""

from __future__ import annotations

import argparse
import importlib

import pytest

from ctc_tui import cli


def test_every_command_has_its_arguments_in_its_module():
    for name, (module, summary) in cli.COMMANDS.items():
        assert name in importlib.import_module(f"ctc_tui.cli.{module}").ARGUMENTS and summary


def test_the_parser_lists_the_commands_in_order_with_their_summaries():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.COMMANDS)
    assert [a.help for a in sub._choices_actions] == [summary for _, summary in cli.COMMANDS.values()]


def test_run_arguments_build_a_resume_request(tmp_path):
    from ctc_tui.cli.run import _request
    from ctc_tui.runs.service import ResumeRequest, StartRequest

    args = cli.build_parser().parse_args(["run", "--resume", str(tmp_path), "--no-check"])
    assert _request(args, None) == ResumeRequest(run_dir=str(tmp_path), overrides=(), check=False)
    args = cli.build_parser().parse_args(["run", "demo-cpu", "a.b=1", "--output-dir", "x"])
    assert _request(args, None) == StartRequest(preset="demo-cpu", overrides=("a.b=1",), output_dir="x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["stop", "{tmp}"], "is not a ctc-tui run dir (no events.jsonl); list runs with: ctc-tui runs"),
        (["attach", "{tmp}", "--plain"], "is not a ctc-tui run dir (no events.jsonl)"),
        (["run"], "error: ctc-tui run needs a preset (see ctc-tui presets) or --resume RUN_DIR"),
        (["run", "demo-cpu", "--nodes", "2"], "--slurm runs only (add --slurm or leave them out)"),
        (["export", "demo-cpu"], "error: ctc-tui export needs a format: --slurm (an sbatch script)"),
    ],
)
def test_usage_errors_exit_2_with_the_message(tmp_path, capsys, argv, message):
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_stop_of_an_ended_run(tmp_path, capsys, monkeypatch):
    """No supervisor answers (faked here: the real control socket is tests/integration's business)."""
    from ctc_tui.runs import client

    def no_supervisor(run_dir, kill=False):
        raise client.NotRunning(run_dir)

    monkeypatch.setattr(client, "stop", no_supervisor)
    (tmp_path / "events.jsonl").write_text("")
    assert cli.main(["stop", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path.resolve()} has no live supervisor: the run has already ended\n"
    )


def test_a_preset_word_is_not_a_command():
    assert not cli._looks_like_preset("run") and cli._looks_like_preset("mine.yaml")
    assert not cli._looks_like_preset("--help")


def test_a_run_dir_whose_sockets_cannot_fit_is_refused_without_the_check(tmp_path, capsys):
    """``ctc-tui run --no-check`` refuses a run dir too long for its sockets as the check would (the
    check itself, which probes this machine: tests/integration/test_check.py), writing nothing."""
    out = tmp_path / ("a-long-run-directory-name-" * 4)
    assert cli.main(["run", "demo-cpu", "--output-dir", str(out), "--no-check", "--detach"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run dir's socket path ") and "shorter training.output_dir" in err
    assert "Traceback" not in err and not out.exists()
