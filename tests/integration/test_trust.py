"""Issue 17, items 1, 2 and 4, done for real: a second user, made with ``useradd`` for this session, attacks
a user's runs on the same machine. Their 1777 team folder holds a run dir whose processes.json names one
of my processes (a ``sleep``); a fake supervisor of theirs answers on a control socket; a folder above a
run dir is world-writable, or a symbolic link of theirs; a recorded pid now belongs to another process;
a second ``ctc-tui run`` goes into a live run's dir. Every refusal is one line, exit 2, and nothing of
mine is signalled or overwritten.

The second user acts through ``runuser`` (files, folders, links) or as a forked child of this test that
drops to their uid (a socket server, a client): the venv's python may be out of their reach."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from ctc_tui.runs import client
from ctc_tui.supervisor import Spec
from tests.conftest import run_cli, wait_for

pytestmark = pytest.mark.slow
HOST = socket.gethostname()
FAKE_REPLY = b'{"ok": true, "op": "stop", "pid": 1, "states": {}, "events": 0, "acted": true}\n'


# -- the second user ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stranger() -> Iterator[SimpleNamespace]:
    """A throw-away second user (no home, no shell), removed with whatever it left running."""
    assert os.geteuid() == 0, "these tests make a second user: run them as root (as CI does)"
    assert shutil.which("useradd") and shutil.which("runuser"), "apt-get install passwd util-linux"
    name = f"ctcx{os.getpid() % 100000}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    entry = pwd.getpwnam(name)
    try:
        yield SimpleNamespace(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    finally:
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] and proc.info["uids"].real == entry.pw_uid:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        subprocess.run(["userdel", name], capture_output=True)


def as_them(user: SimpleNamespace, *argv: str, stdin: str | None = None) -> None:
    """``argv`` run as ``user`` (``runuser``); it must succeed."""
    out = subprocess.run(
        ["runuser", "-u", user.name, "--", *argv], input=stdin, capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0, f"{argv} as {user.name}: {out.stderr}"


def fork_as(user: SimpleNamespace, action: Callable[[], object]) -> int:
    """``action`` in a forked child of this test that has become ``user``; the child's pid."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 1
        try:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            action()
            code = 0
        finally:
            os._exit(code)
    return pid


def end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder like /tmp: root's, mode 1777, where every user may make their own things."""
    path = Path(tempfile.mkdtemp(prefix="ctc-trust-", dir="/tmp"))
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def my_sleep() -> Iterator[psutil.Process]:
    """An unrelated process of mine, in a session of its own (its pid is its process group)."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def record_of(proc: psutil.Process, started_offset: float = 0.0) -> str:
    """A processes.json naming ``proc`` as the launcher, its process group and rank 0 (all of it readable
    by anyone in /proc)."""
    started = proc.create_time() + started_offset
    return json.dumps(
        {
            "supervisor_pid": 1,
            "launcher_pid": proc.pid,
            "launcher_started": started,
            "process_group": os.getpgid(proc.pid),
            "ranks": {"0": {"pid": proc.pid, "host": HOST, "started": started}},
        }
    )


def one_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# -- (a) another user's run dir naming my process ------------------------------------------------------


@pytest.mark.parametrize("team_of", ["them", "root"])
def test_a_strangers_run_dir_naming_my_process_is_refused_and_my_process_lives(
    shared, stranger, my_sleep, team_of
):
    """Their run dir in their 1777 team folder (or straight in /tmp-like ``shared``) with a processes.json
    naming my sleep, pid, group and start time right: stop --kill refuses, runs says untrusted."""
    team = shared / "team-runs"
    if team_of == "them":
        as_them(stranger, "mkdir", "-m", "1777", str(team))
    else:
        team = shared
    fake = team / "run-1"
    as_them(stranger, "mkdir", "-m", "755", str(fake))
    as_them(
        stranger,
        "tee",
        str(fake / "events.jsonl"),
        stdin='{"type":"state","rank":-1,"t":1,"state":"training"}\n',
    )
    as_them(stranger, "tee", str(fake / "processes.json"), stdin=record_of(my_sleep))
    os.chmod(fake / "processes.json", 0o644)  # readable: what the old code needed to act on it

    for argv in (["stop", "--kill", str(fake)], ["stop", str(fake)], ["attach", "--plain", str(fake)]):
        err = one_line(run_cli(*argv, timeout=60))
        assert f"belongs to user {stranger.name} (uid {stranger.uid})" in err, err
    assert alive(my_sleep)

    listed = run_cli("runs", str(team), timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "orphaned" not in listed.stdout and "untrusted" in listed.stdout, listed.stdout
    assert (
        f"note: run-1 is untrusted and was not read: {team if team_of == 'them' else fake}" in listed.stderr
    )
    assert alive(my_sleep)


# -- (b) a fake supervisor of another user ------------------------------------------------------------------


def serve_like_a_supervisor(path: Path, heard: Path) -> Callable[[], None]:
    """What the stranger runs: a Unix socket at ``path`` answering every request as a supervisor would
    ("stopped", acted), writing what it was told to ``heard``."""

    def serve() -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o777)
        server.listen(8)
        while True:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    data = conn.recv(4096)
                    if data:
                        with open(heard, "ab") as handle:
                            handle.write(data)
                    conn.sendall(FAKE_REPLY)

    return serve


def test_a_fake_supervisor_of_another_user_is_refused_by_stop_and_attach(tmp_path, shared, stranger):
    """A socket served by the stranger's process, in a run dir of mine (put there by root: the dir checks
    cannot see who serves a socket, SO_PEERCRED can): plain stop no longer reports success, attach
    follows nothing, and the fake server is told nothing."""
    mine = tmp_path / "run"
    mine.mkdir(mode=0o700)
    (mine / "events.jsonl").write_text('{"type":"state","rank":-1,"t":1,"state":"training"}\n')
    heard = shared / "heard"
    pid = fork_as(stranger, serve_like_a_supervisor(shared / "fake.sock", heard))
    try:
        wait_for(lambda: (shared / "fake.sock").exists(), timeout=10, what="the fake supervisor")
        os.rename(shared / "fake.sock", mine / "supervisor.sock")
        (mine / "supervisor.pid").write_text(str(pid))
        for argv in (["stop", str(mine)], ["attach", "--plain", str(mine)], ["stop", "--kill", str(mine)]):
            err = one_line(run_cli(*argv, timeout=60))
            assert (
                f"supervisor.sock is served by user {stranger.name} (uid {stranger.uid}) (pid {pid})" in err
            )
        assert not heard.exists()  # not a byte was sent to it
    finally:
        end(pid)


def test_a_rank_never_reports_to_another_users_log_socket(shared, stranger):
    """A rank told a log socket that another user serves treats it as unreachable (its own events file
    keeps everything) and sends it nothing, not even its hello."""
    from ctc_tui.runner import report

    heard = shared / "heard"
    pid = fork_as(stranger, serve_like_a_supervisor(shared / "log.sock", heard))
    try:
        wait_for(lambda: (shared / "log.sock").exists(), timeout=10, what="the fake log socket")
        assert report._connect(str(shared / "log.sock"), None) is None
        time.sleep(0.5)
        assert not heard.exists()
    finally:
        end(pid)


def test_the_supervisor_serves_only_its_own_user(shared, stranger):
    """A real supervisor whose sockets were opened to everyone (chmod 666, a stand-in for any leak): the
    stranger's stop and forged event are hung up on and counted, the run goes on."""
    run_dir = shared / "run"
    run_dir.mkdir(mode=0o711)  # others may pass through (never list or write), to reach the sockets
    pid = client.start_detached(run_dir, Spec(command=[sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        for name in ("supervisor.sock", "log.sock"):
            os.chmod(run_dir / name, 0o666)

        said = shared / "said"

        def attack() -> None:
            """Connect to both sockets, send, and write down what came back (or how it failed)."""
            answers = []
            for name, line in (
                ("supervisor.sock", b'{"op": "stop"}\n'),
                ("log.sock", b'{"type":"exit","rank":-1,"t":1,"code":0,"state":"done"}\n'),
            ):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(5)
                    sock.connect(str(run_dir / name))  # the socket is open to all: this works
                    try:
                        sock.sendall(line)
                        answers.append(sock.recv(4096).decode() or "hung up")
                    except OSError:
                        answers.append("hung up")
            said.write_text(json.dumps(answers))

        child = fork_as(stranger, attack)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the stranger could not connect"
        assert json.loads(said.read_text()) == ["hung up", "hung up"]
        reply = wait_for(
            lambda: (r := asyncio.run(client.request(run_dir, "status")))["refused_peers"] == 2 and r,
            timeout=10,
            what="both connections counted",
        )
        assert "done" not in reply["states"].values() and "stopped" not in reply["states"].values()
        assert client.is_live(run_dir) and psutil.Process(pid).is_running()
        assert b'"exit"' not in (run_dir / "events.jsonl").read_bytes()
    finally:
        client.stop(run_dir, kill=True)
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", timeout=30)


# -- (c), (d) the folders above a run dir ----------------------------------------------------------------


def test_run_refuses_a_world_writable_folder_above_without_the_sticky_bit(shared):
    """``mkdir -m 777 /tmp/team-runs``: anyone could ``mv r1 r1.real; mkdir r1`` while the run trains."""
    team = shared / "team-runs"
    team.mkdir()
    os.chmod(team, 0o777)
    err = one_line(run_cli("run", "demo-cpu", "--detach", "--output-dir", str(team / "r1"), timeout=60))
    assert f"{team}, a folder above the run dir, can be written by group and others (mode 777)" in err
    assert "not sticky" in err and f"chmod go-w {team}" in err
    assert list(team.iterdir()) == []


def test_run_and_stop_refuse_a_symlinked_folder_of_another_user(shared, stranger, my_sleep):
    real = shared / "real-runs"
    real.mkdir(mode=0o755)
    link = shared / "runs"
    as_them(stranger, "ln", "-s", str(real), str(link))
    err = one_line(run_cli("run", "demo-cpu", "--detach", "--output-dir", str(link / "r1"), timeout=60))
    assert f"{link}, a symbolic link on the way to the run dir, belongs to user {stranger.name}" in err
    assert list(real.iterdir()) == []

    mine = real / "r0"  # a run dir of mine, reached through their link
    mine.mkdir(mode=0o700)
    (mine / "events.jsonl").write_text("")
    fd = os.open(mine / "processes.json", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, record_of(my_sleep).encode())
    os.close(fd)
    err = one_line(run_cli("stop", "--kill", str(link / "r0"), timeout=60))
    assert "a symbolic link on the way to the run dir" in err and alive(my_sleep)


# -- recorded processes ----------------------------------------------------------------------------------


@pytest.fixture
def fake_rank() -> Iterator[psutil.Process]:
    """A process of mine whose command line is a rank's (``-m ctc_tui.runner``)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "-m", "ctc_tui.runner", "x.yaml"],
        start_new_session=True,
    )
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_a_recorded_pid_now_another_process_is_not_signalled(tmp_path, fake_rank):
    """My own run dir, a private processes.json: the pid is there and looks like a rank, but started an
    hour after the one recorded (pid reuse): nothing is signalled. With the true start time it is."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "events.jsonl").write_text("")
    record = run_dir / "processes.json"
    for offset in (-3600.0, 0.0):
        record.unlink(missing_ok=True)
        fd = os.open(record, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, record_of(fake_rank, offset).encode())
        os.close(fd)
        out = run_cli("stop", "--kill", str(run_dir), timeout=60)
        if offset:
            assert out.returncode == 2 and "the run has already ended" in out.stderr, out.stderr
            time.sleep(0.5)
            assert alive(fake_rank)
    assert out.returncode == 0 and "signalled directly" in out.stdout, out.stdout + out.stderr
    wait_for(lambda: not alive(fake_rank), timeout=10, what="the truly recorded process to be killed")


# -- (e) a second run into a live run's dir ------------------------------------------------------------------


def test_a_second_run_into_a_live_run_dir_is_refused_and_its_files_untouched(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    first = run_cli(
        "run", "demo-cpu", "training.max_steps=100000", "--output-dir", str(run_dir), "--detach", timeout=90
    )
    assert first.returncode == 0, first.stdout + first.stderr
    try:
        pid = int((run_dir / "supervisor.pid").read_text())
        before = {
            name: (run_dir / name).read_bytes() for name in ("preset.yaml", "command.sh", "supervisor.json")
        }
        for extra in (["training.overwrite_output_dir=true"], [], ["training.max_steps=7"]):
            out = run_cli("run", "demo-cpu", *extra, "--output-dir", str(run_dir), "--detach", timeout=90)
            err = one_line(out)
            assert f"is in use by a live run (pid {pid})" in err, err
            assert f"ctc-tui attach {run_dir}" in err and f"ctc-tui stop {run_dir}" in err
        resumed = run_cli("run", "--resume", str(run_dir), "training.max_steps=9", "--detach", timeout=90)
        assert f"is in use by a live run (pid {pid})" in one_line(resumed)
        after = {name: (run_dir / name).read_bytes() for name in before}
        assert after == before and not (run_dir / "preset.previous.yaml").exists()
        assert client.is_live(run_dir)
    finally:
        run_cli("stop", "--kill", str(run_dir), timeout=60)
