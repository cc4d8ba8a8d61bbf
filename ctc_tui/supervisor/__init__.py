"""The supervisor: owns one run's processes, its log socket and its event history.

Started detached (``python -m ctc_tui.supervisor RUN_DIR``, its own session), it outlives the terminal
that started it. It

- starts the launcher (mpirun, deepspeed, torchrun or python) in a process group of its own;
- listens on ``RUN_DIR/log.sock`` (mode 0600) where every rank streams NDJSON events, and, for ranks
  on other hosts, on TCP where a sender must first present the run's token;
- is the single writer of ``RUN_DIR/events.jsonl``;
- serves clients on ``RUN_DIR/supervisor.sock``: ``subscribe`` (history, then live events), ``stop``
  (graceful: ranks checkpoint and exit 0) and ``kill``;
- tears the whole process tree down when the launcher exits or any rank fails (SIGINT, SIGCONT +
  SIGTERM, SIGKILL), and ends a graceful stop the ranks did not finish within its grace the same way;
  records which rank failed and its last log lines, and exits with the run's status;
- for a batch job (``ctc-tui run --NAME`` of a batch scheduler, ``ctc_tui.schedulers``: the launcher
  is the job's submission, the ranks are the scheduler's), asks the scheduler's ``Job`` to report the
  job's queue state, to cancel a job still queued on a graceful stop, and to cancel the job on any
  teardown, ending only once the scheduler no longer lists it.

Malformed, oversized, invalid (``events.validate``), forged (a rank speaking for the supervisor or for
another rank: ``admission``), rate-limited or unauthenticated input is dropped and counted, never fatal;
a flood of connections is capped (``ingest``), a client that falls behind is cut off and resumes from
the file (``eventlog``), and the supervisor's own log of loop errors is rate-limited. Every limit is
in ``limits``, with its reason.

The parts, one job each: ``eventlog`` (events.jsonl, subscribers, ``read_events``), ``ingest`` (the ranks'
connections), ``admission`` (who may speak for which rank, and how much), ``control`` (the control socket
protocol), ``processes`` (the launcher's tree, the ranks, the failed rank), ``escalation`` (how a stop
escalates: SIGINT, then past ``launch.stop_grace_seconds`` SIGCONT + SIGTERM, then SIGKILL),
``deepspeed_env`` (DeepSpeed's env file), ``limits`` (every limit; the open-file limit, rate-limited
loop errors and notices), ``runrecord`` (processes.json, how a run outlives its supervisor; the
one-supervisor lock) and ``core`` (the ``Supervisor`` composing them, ``Spec``, ``Outcome``, ``serve``).
The run's batch job, if any, is its scheduler's ``Job`` (``ctc_tui.schedulers``).
"""

from ctc_tui.supervisor import runrecord
from ctc_tui.supervisor.core import (
    CONTROL_SOCKET,
    LOG_SOCKET,
    SPEC_FILE,
    SUPERVISOR_RANK,
    Outcome,
    Spec,
    Supervisor,
    main,
    serve,
)
from ctc_tui.supervisor.eventlog import SUBSCRIBER_BYTES, Counters, iter_events, read_events
from ctc_tui.supervisor.processes import GRACE_STOP, GRACE_TERM

__all__ = [
    "CONTROL_SOCKET",
    "GRACE_STOP",
    "GRACE_TERM",
    "LOG_SOCKET",
    "SPEC_FILE",
    "SUBSCRIBER_BYTES",
    "SUPERVISOR_RANK",
    "Counters",
    "Outcome",
    "Spec",
    "Supervisor",
    "iter_events",
    "main",
    "read_events",
    "runrecord",
    "serve",
]
