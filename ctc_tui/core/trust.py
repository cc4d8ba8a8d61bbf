"""What ctc-tui trusts on a machine shared with other users: the rules every command applies before it
acts on a run dir, reads a run file, talks over a run's socket or signals a recorded process.

- The run dir: a real directory, owned by you, not writable by group or others.
- Every folder above it (OpenSSH's ``StrictModes`` rule): owned by you or root, and not writable by group
  or others unless sticky (``/tmp``). Symbolic links on the way are followed as the kernel would and the
  real folders are checked; a link itself must be yours or root's.
- Its private files (``processes.json``, ``supervisor.json``, the token files): owned by you, no access
  for group or others (0600), never read through a symbolic link.
- A Unix socket peer: the kernel's ``SO_PEERCRED`` says which user is at the other end; only your own
  uid is served (the supervisor) or believed (its clients).
- A recorded process: signalled only while it is the one recorded: same pid and start time, your uid,
  and a command line of ctc-tui's (the caller says which).

Refusals raise ``Untrusted``, one line naming the owner or mode that is wrong and the fix.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

#: The run files that hold secrets or say which processes to signal: yours, 0600, never a link.
PRIVATE_FILES = ("processes.json", "supervisor.json", "run-token", "hf-token")
START_TIME_SLACK = 1.0  # seconds: a pid whose start time differs more is another process (pid reuse)
MAX_LINKS = 40  # as the kernel's ELOOP limit


class Untrusted(Exception):
    """A run dir, file, socket or process that another user could control; the message names the owner or
    mode that is wrong, and the fix."""


def user(uid: int) -> str:
    """``user NAME (uid N)``, or ``uid N`` when the uid has no name."""
    import pwd  # deferred: only for messages

    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _writers(mode: int) -> str:
    return "group and others" if mode & 0o002 else "its group"


# -- folders --------------------------------------------------------------------------------------


def walk(path: str | Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every folder and symbolic link the kernel passes through to reach ``path``, from ``/``, each with its
    ``lstat``; the last one yielded is ``path``'s real self. A link's target is walked in its place.
    Stops at the first part that does not exist (a run dir still to be made). Raises Untrusted when a
    part cannot be looked at."""
    text = os.path.expanduser(str(path))
    if not text.startswith("/"):
        text = os.path.join(os.getcwd(), text)
    pending = deque(text.split("/"))
    current, links = "/", 0
    yield "/", os.lstat("/")
    while pending:
        name = pending.popleft()
        if name in ("", "."):
            continue
        if name == "..":  # current holds no link: its textual parent is its real parent
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise Untrusted(
                f"cannot look at {candidate}: {exc.strerror}; check that folder's owner and mode"
            ) from None
        yield candidate, st
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise Untrusted(f"{path}: too many symbolic links on the way (a loop?); give the real path")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extendleft(reversed(target.split("/")))
            continue
        current = candidate


def ancestor_problem(folder: str, st: os.stat_result) -> str | None:
    """Why a folder above a run dir (or a link on the way) lets another user swap what lies below it;
    None when it is fine: owned by you or root, not writable by group or others unless sticky."""
    kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "folder"
    if st.st_uid not in (os.geteuid(), 0):
        return (
            f"{folder}, a {kind} on the way to the run dir, belongs to {user(st.st_uid)}: every folder "
            "above a run dir must be yours or root's (they could swap the run dir for theirs); "
            "choose an output dir under a folder you own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if kind == "folder" and mode & 0o022 and not mode & stat.S_ISVTX:
        return (
            f"{folder}, a folder above the run dir, can be written by {_writers(mode)} (mode {mode:o}) and "
            f"is not sticky: anyone could swap the run dir; fix it with chmod go-w {folder} (or chmod +t "
            "for a shared folder), or choose another output dir"
        )
    return None


def run_dir_problem(folder: str | Path, st: os.stat_result) -> str | None:
    """Why a run dir is not one ctc-tui may act on; None when it is a directory of yours that group and
    others cannot write to."""
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a directory: choose another output dir"
    if st.st_uid != os.geteuid():
        return (
            f"{folder} belongs to {user(st.st_uid)}, not to you: ctc-tui acts only on your own run dirs "
            "(choose another output dir, or ask its owner)"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        return (
            f"{folder} can be written by {_writers(mode)} (mode {mode:o}): make it private with "
            f"chmod go-w {folder}, or choose another output dir"
        )
    return None


def path_problem(path: str | Path, run_dir: bool = True) -> str | None:
    """The first problem on the way to ``path`` (every folder above it, every link, and with ``run_dir``
    the real run dir itself when it exists); None when all of them are safe."""
    steps = list(walk(path))
    last = len(steps) - 1 if run_dir and _reached(path, steps) else len(steps)
    for index, (name, st) in enumerate(steps):
        problem = run_dir_problem(name, st) if index == last else ancestor_problem(name, st)
        if problem:
            return problem
    return None


def _reached(path: str | Path, steps: list[tuple[str, os.stat_result]]) -> bool:
    """Whether the walk reached ``path`` itself (it exists) and ended on its real self, not a link."""
    if not steps or stat.S_ISLNK(steps[-1][1].st_mode):
        return False
    return os.path.exists(os.path.expanduser(str(path)))


def check_path(path: str | Path, run_dir: bool = True) -> None:
    """Untrusted with the first problem ``path_problem`` finds."""
    problem = path_problem(path, run_dir)
    if problem:
        raise Untrusted(problem)


# -- files ----------------------------------------------------------------------------------------


def file_problem(path: str | Path, st: os.stat_result) -> str | None:
    """Why a private run file is not trustworthy; None when it is a regular file of yours, 0600."""
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link: ctc-tui never reads a run file through one; remove it"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file: remove it"
    if st.st_uid != os.geteuid():
        return (
            f"{path} belongs to {user(st.st_uid)}, not to you: remove it (this run dir's files must be yours)"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return f"{path} has mode {mode:o}, open to others: it must be 0600 (chmod 600 {path}, if it is yours)"
    return None


def check_files(folder: str | Path, names: Iterable[str] = PRIVATE_FILES) -> None:
    """Untrusted when one of the private files present in ``folder`` fails ``file_problem``."""
    for name in names:
        path = Path(folder) / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        problem = file_problem(path, st)
        if problem:
            raise Untrusted(problem)


def check_run_dir(path: str | Path) -> None:
    """Every rule a run dir must pass before a command acts on it: the folders and links on the way, the
    run dir itself, and its private files."""
    check_path(path)
    check_files(path)


def read_private(path: str | Path) -> str | None:
    """The text of the private run file ``path`` (opened with ``O_NOFOLLOW``, then checked by its open
    descriptor); None when it does not exist. Untrusted when ``file_problem`` finds one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise Untrusted(
                f"{path} is a symbolic link: ctc-tui never reads a run file through one; remove it"
            ) from None
        raise Untrusted(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as handle:
        problem = file_problem(path, os.fstat(handle.fileno()))
        if problem:
            raise Untrusted(problem)
        return handle.read()


# -- sockets --------------------------------------------------------------------------------------


def peer_credentials(sock: Any) -> tuple[int, int, int] | None:
    """``(pid, uid, gid)`` of the process at the other end of a connected Unix socket, as the kernel
    knows it (``SO_PEERCRED``); None where this platform cannot tell."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock is None:
        return None
    size = struct.calcsize("3i")
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, size))


def peer_is_me(sock: Any) -> bool:
    """Whether the peer of ``sock`` runs as this process's user (True where the platform cannot tell:
    the socket is 0600 in a private run dir). A missing socket (no transport) is not trusted."""
    if sock is None:
        return False
    credentials = peer_credentials(sock)
    return credentials is None or credentials[1] == os.geteuid()


def check_server(sock: Any, path: str | Path) -> None:
    """Untrusted when the process serving ``path`` (connected as ``sock``) is not of this user: it is
    not this user's supervisor, and nothing may be sent to it or believed from it."""
    credentials = peer_credentials(sock)
    if credentials is None or credentials[1] == os.geteuid():
        return
    pid, uid, _ = credentials
    raise Untrusted(
        f"{path} is served by {user(uid)} (pid {pid}), not by you: it is not your run's supervisor, so "
        "nothing was sent; check who made that run dir (ctc-tui runs lists yours)"
    )


# -- processes ------------------------------------------------------------------------------------


def recorded_process(pid: Any, started: float | None, ours: Callable[[list[str]], bool]) -> Any:
    """The live ``psutil.Process`` ``pid`` while it is still the one recorded: the same start time (when
    one was recorded), your uid, not a zombie, and ``ours(its command line)``; None otherwise."""
    import psutil  # deferred: only the commands that look at processes need it

    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.uids().real != os.getuid():
            return None
        if started is not None and abs(proc.create_time() - float(started)) >= START_TIME_SLACK:
            return None
        return proc if ours(proc.cmdline()) else None
    except (psutil.Error, TypeError, ValueError):
        return None
