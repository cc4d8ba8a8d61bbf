"""What keeps a run private from other users of the same machine: run dirs made 0700 (or the mode the
user sets in ``CTC_TUI_RUN_DIR_MODE``) and refused when someone else owns them or could write into them,
and secret files (the run's TCP token, a Hub token) created ``O_EXCL`` with mode 0600 and never read
through a symbolic link.

Secrets live in files, not in the environment or on a command line: ``ps`` shows every process's argv to
every user, and launchers (pdsh, mpirun, DeepSpeed) copy environment variables onto remote command lines.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from ctc_tui.core import rundir, trust

MODE_ENV = "CTC_TUI_RUN_DIR_MODE"  # octal, e.g. 750 to share a run dir read-only with the group
DEFAULT_MODE = 0o700
HF_TOKEN_ENV = "HF_TOKEN"
#: What is shown (and accepted as "none given here") in place of a Hub token.
FROM_ENV = "<from HF_TOKEN>"


#: Every refusal of a run dir or secret file: the trust rules' own error (ctc_tui.core.trust).
PrivacyError = trust.Untrusted


# -- run dirs -------------------------------------------------------------------------------------


def run_dir_mode(environ: Mapping[str, str] | None = None) -> int:
    """The mode new run dirs get: ``$CTC_TUI_RUN_DIR_MODE`` (octal), else 0700. The owner keeps full
    access; group and others may read and enter, never write."""
    text = (os.environ if environ is None else environ).get(MODE_ENV, "").strip()
    if not text:
        return DEFAULT_MODE
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o700 != 0o700 or mode & 0o022:
        raise PrivacyError(
            f"{MODE_ENV}={text!r} is not a run dir mode: give octal digits with full access for you and no "
            "write access for group or others (e.g. 700, 750 or 755)"
        )
    return mode


def check_run_dir(path: str | Path) -> None:
    """Refuse an existing run dir that another user owns or could write into, one below a folder someone
    else could swap, or one whose private files are not private (ctc_tui.core.trust): they could plant
    files (a symlinked secret, a forged processes.json) that this run would trust."""
    if os.path.islink(path):
        raise PrivacyError(
            f"{path} is a symbolic link, not a directory: give the real path, or another output dir"
        )
    trust.check_run_dir(path)


def create_run_dir(path: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """The run dir itself, made with ``run_dir_mode()`` when missing (missing parents get the usual
    umask), and nothing in it: what must exist before its lock can be taken. An existing one must pass
    ``check_run_dir``; either way every folder above it must pass the StrictModes rule."""
    path = Path(path)
    mode = run_dir_mode(environ)
    if path.exists() or path.is_symlink():
        check_run_dir(path)
        return path
    trust.check_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trust.check_path(path.parent)  # the folders just made, and what they were made in
    os.mkdir(path, mode)
    os.chmod(path, mode)  # the umask may have taken bits away
    return path


def make_run_dir(path: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """Create the run dir and its ``logs/`` with ``run_dir_mode()`` (missing parents get the usual
    umask); an existing one must pass ``check_run_dir`` and loses what the mode does not grant (a run
    dir made before runs were private becomes private on its resume)."""
    path = create_run_dir(path, environ)
    mode = run_dir_mode(environ)
    for directory in (path, rundir.logs_dir(path)):
        if directory.exists() or directory.is_symlink():
            check_run_dir(directory)
            current = stat.S_IMODE(os.lstat(directory).st_mode)
            if current & ~mode:
                os.chmod(directory, current & mode)
            continue
        os.mkdir(directory, mode)
        os.chmod(directory, mode)  # the umask may have taken bits away
    return path


# -- secret files ---------------------------------------------------------------------------------


def write_secret(path: str | Path, text: str) -> Path:
    """Write ``text`` to a new file ``path`` with mode 0600 (``O_EXCL | O_NOFOLLOW``: a file or link
    someone put there is removed first, never written through)."""
    path = Path(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def open_log(path: str | Path) -> BinaryIO:
    """``path`` opened for appending, created with mode 0600 (not through a symbolic link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "ab")


def read_secret(path: str | Path) -> str | None:
    """The stripped text of the secret file ``path``; None when there is none (or it is empty). Raises
    PrivacyError for a symbolic link, a file of another user or one that group or others can read."""
    text = trust.read_private(path)
    return (text or "").strip() or None


def run_token(run_dir: str | Path) -> str | None:
    """The run's TCP token, from ``RUN_DIR/run-token`` (None when the run has none or it is unreadable)."""
    try:
        return read_secret(Path(run_dir) / rundir.RUN_TOKEN)
    except PrivacyError:
        return None


def hf_token(run_dir: str | Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The Hub token a rank uses: ``$HF_TOKEN``, else ``RUN_DIR/hf-token`` (written at run start from
    model.token, or from HF_TOKEN for ranks on other hosts); None leaves it to huggingface_hub (its
    own token file, ``huggingface-cli login``)."""
    env = os.environ if environ is None else environ
    if env.get(HF_TOKEN_ENV):
        return env[HF_TOKEN_ENV]
    if run_dir is None:
        return None
    return read_secret(Path(run_dir) / rundir.HF_TOKEN_FILE)


# -- redaction ------------------------------------------------------------------------------------

#: Flags named ``...token`` that are vocabulary symbols, not secrets.
_VOCAB_FLAGS = ("unk_token", "pad_token", "word_delimiter_token", "bos_token", "eos_token", "mask_token")
_VALUE = r"""(?:'[^']*'|"[^"]*"|[^\s'"]+)"""
_SECRET_FLAG = re.compile(r"(--(?!(?:%s)\b)[\w-]*token)(=|\s+)%s" % ("|".join(_VOCAB_FLAGS), _VALUE), re.I)
_SECRET_ASSIGNMENT = re.compile(r"\b([A-Z_]*TOKEN[A-Z_]*)=%s" % _VALUE)
REDACTED = "<redacted>"


def redact(command: str) -> str:
    """``command`` (a pasted shell command) with the values of ``--token``-like flags (``--token``,
    ``--hub_token``, ``--use_auth_token``...) and ``*TOKEN*=`` assignments replaced by ``<redacted>``."""
    command = _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", command)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={REDACTED}", command)
