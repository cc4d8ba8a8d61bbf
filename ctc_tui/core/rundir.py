"""Every file name of a run directory (= the preset's ``training.output_dir``), once.

What Hugging Face writes there (the model, the processor, ``checkpoint-N/``, ``all_results.json``)
keeps its own names; these are the files ctc-tui and its ranks add. Paths are built with the helpers
below so that a name is never typed twice.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PRESET = "preset.yaml"  # the resolved preset this run was started with
PREVIOUS_PRESET = "preset.previous.yaml"  # kept when a resume changed the preset
COMMAND = "command.sh"  # the exact launched command
ENV_INFO = "env.json"  # package versions, host, devices, git revision, seed
EVENTS = "events.jsonl"  # every event, written by the supervisor only
GAUDI_CONFIG = "gaudi_config.json"
LOGS = "logs"  # logs/rank-N.log, logs/launcher.log, logs/supervisor.log
LAUNCHER_LOG = "launcher.log"
SUPERVISOR_LOG = "supervisor.log"

SUPERVISOR_SPEC = "supervisor.json"  # what the detached supervisor runs
SUPERVISOR_SPEC_TMP = "supervisor.tmp"
SUPERVISOR_PID = "supervisor.pid"
SUPERVISOR_LOCK = "supervisor.lock"  # flock'd by the run's one supervisor for its whole life
PROCESSES = "processes.json"  # how to find and signal the run's processes when its supervisor is gone
PROCESSES_TMP = "processes.tmp"
CONTROL_SOCKET = "supervisor.sock"  # subscribe / stop / kill
LOG_SOCKET = "log.sock"  # ranks on this node send their events here
DEEPSPEED_ENV = ".deepspeed_env"  # what the DeepSpeed launcher forwards to other nodes
RUN_TOKEN = "run-token"  # 0600: the secret TCP senders present (ranks read it; never in env or argv)
HF_TOKEN_FILE = "hf-token"  # 0600: the Hub token for this run's ranks (from model.token or HF_TOKEN)

LM_DIR = "lm"  # ctc-tui lm build: the run's word n-gram LM (ctc_tui.lmbuild)
LM_ARPA = "lm.arpa"  # in LM_DIR: the model in ARPA format
LM_UNIGRAMS = "unigrams.txt"  # in LM_DIR: its words, one a line
LM_INFO = "lm.json"  # in LM_DIR: what went in (sources, counts, order, hashes)
LM_WEIGHTS = "weights.json"  # in LM_DIR: alpha/beta tuned by ctc-tui eval --lm for that ARPA file
EVAL_DIR = "eval"  # ctc-tui eval: eval/<split>.json, one result per split

#: Everything above: files a training run must not mistake for a previous run's output.
OWN_FILES = frozenset(
    {
        PRESET,
        PREVIOUS_PRESET,
        COMMAND,
        ENV_INFO,
        EVENTS,
        GAUDI_CONFIG,
        LOGS,
        SUPERVISOR_SPEC,
        SUPERVISOR_SPEC_TMP,
        SUPERVISOR_PID,
        SUPERVISOR_LOCK,
        PROCESSES,
        PROCESSES_TMP,
        CONTROL_SOCKET,
        LOG_SOCKET,
        DEEPSPEED_ENV,
        RUN_TOKEN,
        HF_TOKEN_FILE,
        LM_DIR,
        EVAL_DIR,
    }
)

#: A batch scheduler's files (``ctc_tui.schedulers``; NAME is the scheduler's): its job script
#: ``job.KIND``, the job's id ``NAME-job-id`` (written aside first as ``NAME-job-id.tmp``) and its options
#: ``NAME-options.json`` (what a resumed run is placed with again). Own files too.
JOB_FILES = re.compile(r"job\.[a-z]+|[a-z]+-job-id(\.tmp)?|[a-z]+-options\.json")


def job_id_file(scheduler: str) -> str:
    return f"{scheduler}-job-id"


def job_options_file(scheduler: str) -> str:
    return f"{scheduler}-options.json"


def is_own_file(name: str) -> bool:
    """Whether ``name`` in a run dir is a file ctc-tui adds (never a previous run's output)."""
    return name in OWN_FILES or JOB_FILES.fullmatch(name) is not None


#: The longest Unix socket path: sun_path holds 108 bytes on Linux, 104 on macOS, its final NUL included.
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
SOCKETS = (LOG_SOCKET, CONTROL_SOCKET)


def socket_path_problem(run_dir: str | Path, limit: int = SOCKET_PATH_MAX) -> str | None:
    """Why the run dir's sockets could not be bound (a path longer than sun_path holds), with the fix;
    None when they fit. Asked before anything is written: past this point it would fail mid-start."""
    folder = Path(run_dir).expanduser().resolve()
    longest = max(SOCKETS, key=len)
    path = folder / longest
    size = len(os.fsencode(str(path)))
    if size <= limit:
        return None
    room = limit - len(os.fsencode(os.sep + longest))
    return (
        f"the run dir's socket path {path} is {size} bytes, longer than a Unix socket path can be here "
        f"({limit} bytes): choose a shorter training.output_dir (--output-dir), at most {room} bytes "
        "as an absolute path (a resumed run: move its folder to a shorter path)"
    )


def rank_log_name(rank: int) -> str:
    return f"rank-{rank}.log"


def rank_events_name(rank: int) -> str:
    """A rank's own copy of what it sent (written when the socket was not reachable too)."""
    return f"events-rank-{rank}.jsonl"


def logs_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOGS


def rank_log(run_dir: str | Path, rank: int) -> Path:
    return logs_dir(run_dir) / rank_log_name(rank)


def is_run_dir(path: str | Path) -> bool:
    """A directory ctc-tui started a run in (it has events or a preset)."""
    path = Path(path)
    return (path / EVENTS).is_file() or (path / PRESET).is_file()
