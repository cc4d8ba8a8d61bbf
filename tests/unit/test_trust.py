"""Issue 17, items 1, 2 and 4, with fakes: the trust rules (ctc_tui.core.trust) for run dirs, the folders
and links above them, their private files, socket peers and recorded processes, and every entry that
applies them (stop, attach, runs, resume, run, export, the supervisor's sockets), and the run dir's lock
taken before anything is written. Ownership by another user is made with os.chown (the tests run as
root); the real attacks, by a real second user, are tests/integration/test_trust.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from ctc_tui import cli
from ctc_tui.check import check_output_dir
from ctc_tui.core import private, rundir, trust
from ctc_tui.core.preset import load_preset
from ctc_tui.runs import client, discovery, service
from ctc_tui.runs.service import ResumeRequest, RunError, StartRequest
from ctc_tui.supervisor import Supervisor, runrecord
from ctc_tui.supervisor.runrecord import ProcessRecord
from tests.conftest import REPO

OTHER = 4242


def folder(path: Path, mode: int = 0o755, uid: int | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def run_dir(path: Path) -> Path:
    """A run dir of this user with an events file (what stop, attach and runs look for)."""
    folder(path, 0o700)
    (path / rundir.EVENTS).write_text(
        json.dumps({"type": "state", "rank": -1, "t": 1.0, "state": "x"}) + "\n"
    )
    return path


# -- folders above a run dir (OpenSSH StrictModes) -------------------------------------------------


def test_every_folder_from_the_root_is_walked(tmp_path):
    target = folder(tmp_path / "a" / "b")
    walked = [name for name, _ in trust.walk(target)]
    assert walked[0] == "/" and walked[-1] == str(target) and str(tmp_path / "a") in walked


def test_a_world_writable_folder_above_without_the_sticky_bit_is_refused(tmp_path):
    team = folder(tmp_path / "team-runs", 0o777)
    problem = trust.path_problem(team / "r1")
    assert f"{team}, a folder above the run dir, can be written by group and others (mode 777)" in problem
    assert "not sticky" in problem and f"chmod go-w {team}" in problem
    os.chmod(team, 0o1777)  # as /tmp: others may add, never swap what is yours
    assert trust.path_problem(team / "r1") is None
    os.chmod(team, 0o775)
    assert "can be written by its group (mode 775)" in trust.path_problem(team / "r1" / "deeper")


def test_a_folder_above_of_another_user_is_refused_root_is_fine(tmp_path):
    theirs = folder(tmp_path / "theirs", 0o755, OTHER)
    assert f"{theirs}, a folder on the way to the run dir, belongs to uid {OTHER}" in trust.path_problem(
        theirs / "r1"
    )
    assert trust.path_problem(Path("/tmp/none-such/r1")) is None  # / and /tmp: root's, /tmp sticky


def test_a_symlinked_ancestor_is_resolved_and_its_real_path_checked(tmp_path):
    real = folder(tmp_path / "open", 0o777)
    link = tmp_path / "runs"
    link.symlink_to(real)
    problem = trust.path_problem(link / "r1")
    assert f"{real}, a folder above the run dir" in problem  # the real folder is named, not the link
    os.chmod(real, 0o755)
    assert trust.path_problem(link / "r1") is None
    os.lchown(link, OTHER, OTHER)  # a link someone else owns may be pointed anywhere, any time
    problem = trust.path_problem(link / "r1")
    assert f"{link}, a symbolic link on the way to the run dir, belongs to uid {OTHER}" in problem


def test_relative_links_and_dot_dot_resolve_as_the_kernel_does(tmp_path):
    folder(tmp_path / "a" / "b")
    bad = folder(tmp_path / "bad", 0o777)
    (tmp_path / "a" / "up").symlink_to("../bad")
    assert str(bad) in trust.path_problem(tmp_path / "a" / "up" / "r1")
    assert trust.path_problem(tmp_path / "a" / "b" / ".." / "b" / "r1") is None


def test_a_symlink_loop_is_refused_not_followed_forever(tmp_path):
    (tmp_path / "x").symlink_to(tmp_path / "y")
    (tmp_path / "y").symlink_to(tmp_path / "x")
    with pytest.raises(trust.Untrusted, match="too many symbolic links"):
        trust.path_problem(tmp_path / "x" / "r1")


# -- the run dir and its private files ---------------------------------------------------------------


def test_the_run_dir_must_be_yours_and_not_writable_by_others(tmp_path):
    mine = run_dir(tmp_path / "mine")
    trust.check_run_dir(mine)
    os.chmod(mine, 0o770)
    with pytest.raises(trust.Untrusted, match=r"can be written by its group \(mode 770\).*chmod go-w"):
        trust.check_run_dir(mine)
    os.chmod(mine, 0o700)
    os.chown(mine, OTHER, OTHER)
    with pytest.raises(trust.Untrusted, match=f"belongs to uid {OTHER}, not to you"):
        trust.check_run_dir(mine)


@pytest.mark.parametrize("name", trust.PRIVATE_FILES)
def test_each_private_file_must_be_yours_0600_and_no_link(tmp_path, name):
    mine = run_dir(tmp_path / "mine")
    path = mine / name
    path.write_text("{}")
    os.chmod(path, 0o600)
    trust.check_run_dir(mine)
    assert trust.read_private(path) == "{}"
    os.chmod(path, 0o640)
    with pytest.raises(trust.Untrusted, match=rf"{name} has mode 640, open to others: it must be 0600"):
        trust.check_run_dir(mine)
    os.chmod(path, 0o600)
    os.chown(path, OTHER, OTHER)
    with pytest.raises(trust.Untrusted, match=f"{name} belongs to uid {OTHER}"):
        trust.read_private(path)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(trust.Untrusted, match=f"{name} is a symbolic link"):
        trust.check_run_dir(mine)
    with pytest.raises(trust.Untrusted, match=f"{name} is a symbolic link"):
        trust.read_private(path)
    assert trust.read_private(mine / "none-such") is None


# -- socket peers ----------------------------------------------------------------------------------


def test_the_kernel_names_the_peer_of_a_unix_socket():
    left, right = socket.socketpair()
    with left, right:
        pid, uid, _ = trust.peer_credentials(left)
        assert (pid, uid) == (os.getpid(), os.geteuid())
        assert trust.peer_is_me(left)
        trust.check_server(left, "supervisor.sock")
    assert not trust.peer_is_me(None)  # no transport, no trust


def test_a_server_of_another_user_is_refused_before_anything_is_sent(monkeypatch):
    monkeypatch.setattr(trust, "peer_credentials", lambda sock: (777, OTHER, OTHER))
    assert not trust.peer_is_me(object())
    with pytest.raises(
        trust.Untrusted, match=rf"/r/supervisor.sock is served by uid {OTHER} \(pid 777\), not"
    ):
        trust.check_server(object(), "/r/supervisor.sock")


class FakeWriter:
    def __init__(self) -> None:
        self.closed = False

    def get_extra_info(self, name: str):
        return "sock" if name == "socket" else None

    def close(self) -> None:
        self.closed = True


def test_the_supervisor_serves_only_its_own_user_on_both_sockets(tmp_path, monkeypatch):
    sup = Supervisor(tmp_path, ["true"], env={})
    served: list = []

    async def handler(reader, writer):
        served.append(writer)

    guarded = sup.own_user_only(handler)
    monkeypatch.setattr(trust, "peer_credentials", lambda sock: (777, OTHER, OTHER))
    stranger = FakeWriter()
    asyncio.run(guarded(None, stranger))
    assert stranger.closed and served == [] and sup.refused_peers == 1
    assert sup.details()["refused_peers"] == 1
    monkeypatch.setattr(trust, "peer_credentials", lambda sock: (778, os.geteuid(), 0))
    own = FakeWriter()
    asyncio.run(guarded(None, own))
    assert served == [own] and not own.closed


# -- recorded processes ----------------------------------------------------------------------------


def test_a_recorded_process_is_signalled_only_while_it_is_the_one_recorded(monkeypatch):
    started = psutil.Process().create_time()
    yes = lambda cmd: True  # noqa: E731
    assert trust.recorded_process(os.getpid(), started, yes).pid == os.getpid()
    assert trust.recorded_process(os.getpid(), None, yes) is not None  # no start time recorded (older runs)
    assert trust.recorded_process(os.getpid(), started - 30, yes) is None  # pid reused since
    assert trust.recorded_process(os.getpid(), started, lambda cmd: False) is None  # not one of ours
    assert trust.recorded_process(None, started, yes) is None
    assert trust.recorded_process(2**22 + 12345, None, yes) is None
    monkeypatch.setattr(trust.os, "getuid", lambda: OTHER)
    assert trust.recorded_process(os.getpid(), started, yes) is None  # another user's process


def test_an_unrelated_process_named_in_a_record_is_never_signalled(tmp_path, monkeypatch):
    """The issue's attack, with fakes: processes.json names a process of this user, with its true pid,
    process group and start time (all world-readable), but it is no launcher or rank: nothing is sent."""
    record = ProcessRecord(
        supervisor_pid=1,
        launcher_pid=os.getpid(),
        launcher_started=psutil.Process().create_time(),
        process_group=os.getpgid(0),
    )
    record.note_rank(0, os.getpid(), socket.gethostname())
    record.save(tmp_path)
    sent: list = []
    monkeypatch.setattr(runrecord.os, "killpg", lambda *a: sent.append(a))
    monkeypatch.setattr(psutil.Process, "send_signal", lambda self, sig: sent.append(sig))
    assert runrecord.signal_directly(tmp_path, kill=True) == 0 and sent == []
    assert not runrecord.orphaned(tmp_path)


def test_the_launcher_is_known_by_the_argv_it_was_started_with_too():
    """A launcher the supervisor started with any argv (a test's stand-in, a user's wrapper) is its own;
    the same pid and start time with another argv is not."""
    record = ProcessRecord(launcher_pid=os.getpid(), launcher_started=psutil.Process().create_time())
    assert record.launcher() is None  # pytest's command line is no launcher's
    record.launcher_command = psutil.Process().cmdline()
    assert record.launcher().pid == os.getpid()
    record.launcher_command = ["sleep", "300"]
    assert record.launcher() is None


# -- the commands ------------------------------------------------------------------------------------


def test_stop_and_attach_refuse_another_users_run_dir_without_acting(tmp_path, monkeypatch, capsys):
    theirs = run_dir(tmp_path / "theirs")
    os.chown(theirs, OTHER, OTHER)
    acted: list = []
    monkeypatch.setattr(client, "stop", lambda *a, **k: acted.append("stop"))
    monkeypatch.setattr(runrecord, "signal_directly", lambda *a: acted.append("direct") or 1)
    for argv in (["stop", "--kill", str(theirs)], ["stop", str(theirs)], ["attach", "--plain", str(theirs)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"belongs to uid {OTHER}, not to you" in err, err
    assert acted == []


def test_a_forged_record_in_my_own_dir_is_refused_by_its_owner(tmp_path, capsys):
    mine = run_dir(tmp_path / "mine")
    ProcessRecord(launcher_pid=os.getpid()).save(mine)
    os.chown(mine / rundir.PROCESSES, OTHER, OTHER)
    assert cli.main(["stop", "--kill", str(mine)]) == 2
    assert "processes.json belongs to uid 4242" in capsys.readouterr().err


def test_a_fake_supervisor_of_another_user_makes_stop_fail_not_succeed(tmp_path, monkeypatch, capsys):
    mine = run_dir(tmp_path / "mine")

    def stop(run_dir, kill=False):
        raise trust.Untrusted(f"{run_dir}/supervisor.sock is served by uid {OTHER} (pid 9), not by you")

    monkeypatch.setattr(client, "stop", stop)
    assert cli.main(["stop", str(mine)]) == 2
    assert "served by uid 4242" in capsys.readouterr().err


def test_runs_lists_another_users_dir_as_untrusted_never_orphaned(tmp_path, capsys):
    run_dir(tmp_path / "mine")
    theirs = run_dir(tmp_path / "theirs")
    os.chown(theirs, OTHER, OTHER)
    asked: list = []
    runs = discovery.find_runs(tmp_path, live=lambda p: False, orphaned=lambda p: asked.append(p) or True)
    states = {r.name: r.state for r in runs}
    assert states == {"mine": discovery.ORPHANED, "theirs": discovery.UNTRUSTED}
    assert asked == [tmp_path / "mine"]  # nothing of theirs was read
    assert f"belongs to uid {OTHER}" in next(r.problem for r in runs if r.name == "theirs")
    assert cli.main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "untrusted" in out.out and "note: theirs is untrusted and was not read" in out.err


def test_run_refuses_an_unsafe_folder_above_before_anything_is_made(tmp_path, capsys):
    team = folder(tmp_path / "team-runs", 0o777)
    assert cli.main(["run", "demo-cpu", "--no-check", "--detach", "--output-dir", str(team / "r1")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{team}, a folder above the run dir" in err and "mode 777" in err
    assert list(team.iterdir()) == []
    assert cli.main(["run", "demo-cpu", "--detach", "--output-dir", str(team / "r1")]) == 2  # with the check
    assert "mode 777" in capsys.readouterr().err and list(team.iterdir()) == []


def test_check_names_an_unsafe_folder_above(tmp_path):
    team = folder(tmp_path / "team-runs", 0o777)
    preset = load_preset(REPO / "presets" / "demo-cpu.yaml")
    preset.training.output_dir = str(team / "r1")
    (finding,) = check_output_dir(preset)
    assert finding.level == "error" and "not sticky" in finding.message


def test_resume_refuses_a_run_dir_below_a_folder_someone_could_swap(tmp_path):
    team = folder(tmp_path / "team", 0o755)
    run = service.prepare(StartRequest(preset="demo-cpu", output_dir=str(team / "r1"), check=False))
    os.chmod(team, 0o777)
    with pytest.raises(RunError, match=r"a folder above the run dir, can be written by group and others"):
        service.prepare(ResumeRequest(run_dir=run.run_dir, check=False))


# -- the lock before anything is written (item 4) ------------------------------------------------------


def test_the_lock_is_taken_before_anything_is_written(tmp_path, monkeypatch):
    seen: list = []
    write = service._write_run_dir

    def spy(request, preset, run_dir, *rest):
        seen.append((runrecord.locked_by(run_dir), sorted(p.name for p in run_dir.iterdir())))
        return write(request, preset, run_dir, *rest)

    monkeypatch.setattr(service, "_write_run_dir", spy)
    run = service.prepare(StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "r"), check=False))
    assert seen == [(os.getpid(), [rundir.SUPERVISOR_LOCK])]  # the lock file only, held by this process
    assert runrecord.locked_by(run.run_dir) is None  # let go on return


def test_a_start_that_stopped_after_the_lock_leaves_a_dir_still_free(tmp_path, monkeypatch):
    """Only the lock file was made (the start failed after it): the dir is still empty for the next run."""

    def fail(*args):
        raise RunError("boom")

    write = service._write_run_dir
    monkeypatch.setattr(service, "_write_run_dir", fail)
    request = StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "r"), check=False)
    with pytest.raises(RunError, match="boom"):
        service.prepare(request)
    assert [p.name for p in (tmp_path / "r").iterdir()] == [rundir.SUPERVISOR_LOCK]
    monkeypatch.setattr(service, "_write_run_dir", write)
    assert service.prepare(request).run_dir == tmp_path / "r"


def test_a_second_run_into_a_live_run_dir_is_refused_untouched(tmp_path, capsys):
    first = service.prepare(StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "r"), check=False))
    before = {p.name: p.read_bytes() for p in first.run_dir.iterdir() if p.is_file()}
    lock = runrecord.acquire_lock(first.run_dir)  # the live run's supervisor holds it
    try:
        argv = ["run", "demo-cpu", "--no-check", "--detach", "--output-dir", str(first.run_dir)]
        for extra in ([], ["training.overwrite_output_dir=true"]):
            assert cli.main([*argv, *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"in use by a live run (pid {os.getpid()})" in err, err
            assert f"ctc-tui attach {first.run_dir}" in err and f"ctc-tui stop {first.run_dir}" in err
        assert cli.main(["run", "--resume", str(first.run_dir), "--no-check", "training.max_steps=9"]) == 2
        assert f"in use by a live run (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        os.close(lock)
    after = {p.name: p.read_bytes() for p in first.run_dir.iterdir() if p.is_file()}
    assert after == before


def test_a_run_dir_whose_processes_run_without_a_supervisor_is_refused(tmp_path, monkeypatch):
    first = service.prepare(StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "r"), check=False))
    ProcessRecord(launcher_pid=os.getpid()).save(first.run_dir)
    monkeypatch.setattr(ProcessRecord, "any_alive", lambda self: True)
    preset_before = (first.run_dir / rundir.PRESET).read_bytes()
    with pytest.raises(RunError, match=rf"live run without its supervisor \(launcher pid {os.getpid()}\)"):
        service.prepare(
            StartRequest(
                preset="demo-cpu",
                output_dir=str(first.run_dir),
                overrides=("training.overwrite_output_dir=true",),
                check=False,
            )
        )
    assert (first.run_dir / rundir.PRESET).read_bytes() == preset_before


def test_export_never_replaces_a_live_runs_job_script(tmp_path, capsys):
    first = service.prepare(StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "r"), check=False))
    script = first.run_dir / "job.sbatch"
    script.write_text("#!/bin/bash\n# the live run's\n")
    lock = runrecord.acquire_lock(first.run_dir)
    try:
        assert cli.main(["export", "demo-cpu", "--slurm", "-o", str(script), "--force"]) == 2
        assert f"in use by a live run (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        os.close(lock)
    assert script.read_text() == "#!/bin/bash\n# the live run's\n"
    assert cli.main(["export", "demo-cpu", "--slurm", "-o", str(script), "--force"]) == 0
    assert "#SBATCH" in script.read_text()


def test_the_supervisor_keeps_the_lock_it_inherits(tmp_path):
    lock = runrecord.acquire_lock(tmp_path)
    inherited = os.dup(lock)  # what a child sees: the same open file, so the same lock
    os.close(lock)
    held = runrecord.acquire_lock(tmp_path, inherited)
    try:
        assert held == inherited and runrecord.locked_by(tmp_path) == os.getpid()
    finally:
        os.close(held)
    assert runrecord.locked_by(tmp_path) is None


def test_a_new_run_dir_and_the_folders_made_for_it_pass_the_rules(tmp_path):
    run = service.prepare(
        StartRequest(preset="demo-cpu", output_dir=str(tmp_path / "a" / "b" / "r"), check=False)
    )
    trust.check_run_dir(run.run_dir)
    assert stat.S_IMODE(os.stat(run.run_dir).st_mode) == 0o700
    assert private.check_run_dir(run.run_dir) is None


def test_the_dashboard_and_the_headless_view_never_believe_a_strangers_socket(monkeypatch):
    """client.follow raises before anything is read; the dashboard shows the line (no traceback)."""
    from ctc_tui.tui.screens import dashboard

    async def follow(run_dir):
        raise trust.Untrusted("/r/supervisor.sock is served by uid 4242 (pid 9), not by you")
        yield  # pragma: no cover

    notes: list = []
    monkeypatch.setattr(client, "follow", follow)
    screen = SimpleNamespace(run_dir=Path("/r"), state=None, following=True, redraw=lambda: None)
    screen.notify = lambda message, **kw: notes.append(message)
    asyncio.run(dashboard.DashboardScreen.follow_events.__wrapped__(screen))
    assert notes == ["/r/supervisor.sock is served by uid 4242 (pid 9), not by you"] and not screen.following
