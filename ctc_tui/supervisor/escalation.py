"""How a run's processes are ended: a graceful stop with a deadline that escalates, as a batch scheduler's
kill wait does.

A stop is a sequence of ``Stage``s: ``interrupt`` (SIGINT: the ranks save a checkpoint, then exit 0), then,
when the run has not ended ``launch.stop_grace_seconds`` later, ``terminate`` (SIGCONT, so that a stopped
process can take it, then SIGTERM: stop at once, no save), then after ``TERM_WAIT`` ``kill`` (SIGKILL). A
kill starts at ``terminate``. ``plan`` makes the sequence; ``Escalation`` walks it against a ``Target``
(anything that can signal a stage and tell whether the run has ended: the supervisor's process tree, the
processes recorded in processes.json, a batch scheduler's job), reporting each stage as it is taken. This
module is the one place the sequence and its timing live.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

INTERRUPT, TERMINATE, KILL = "interrupt", "terminate", "kill"
#: Seconds a graceful stop waits after SIGINT before it escalates (``launch.stop_grace_seconds``).
STOP_GRACE = 120.0
TERM_WAIT = 5.0  # after SIGCONT + SIGTERM, before SIGKILL
KILL_WAIT = 5.0  # after SIGKILL: how long to wait for the kernel to reap
POLL = 0.2  # seconds between looks at whether the run has ended

#: The signals of each stage, in the order they are sent.
SIGNALS: dict[str, tuple[int, ...]] = {
    INTERRUPT: (signal.SIGINT,),
    TERMINATE: (signal.SIGCONT, signal.SIGTERM),
    KILL: (signal.SIGKILL,),
}
#: What each stage asks of the processes, for the lines that report it.
MEANING = {
    INTERRUPT: "save a checkpoint, then exit",
    TERMINATE: "stop at once, no save",
    KILL: "no choice",
}


@dataclass(frozen=True)
class Stage:
    """One step of a stop: its name (``INTERRUPT``, ``TERMINATE``, ``KILL``) and how long the run may take
    to end after it before the next stage is taken."""

    name: str
    wait: float

    @property
    def signals(self) -> tuple[int, ...]:
        return SIGNALS[self.name]

    @property
    def signal_names(self) -> str:
        return " + ".join(signal.Signals(s).name for s in self.signals)


def plan(
    grace: float | None, term_wait: float = TERM_WAIT, kill_wait: float = KILL_WAIT
) -> tuple[Stage, ...]:
    """A graceful stop (``grace``: seconds after SIGINT) or, with ``grace`` None, a kill."""
    stages = (Stage(TERMINATE, term_wait), Stage(KILL, kill_wait))
    return stages if grace is None else (Stage(INTERRUPT, grace), *stages)


class Target(Protocol):
    """What an escalation acts on."""

    def signal(self, stage: Stage) -> int:
        """Send ``stage.signals`` to every process still alive; how many processes were signalled."""
        ...

    def ended(self) -> bool:
        """Whether no process of the run is left."""
        ...


def describe(stage: Stage, count: int, after: Stage | None, following: Stage | None) -> str:
    """The line that reports a stage taken: what was sent to how many, why (``after``: the stage the run
    outlived) and what comes next."""
    sent = f"{stage.signal_names} to {count} process{'es' if count != 1 else ''}"
    then = f"; {following.signal_names} in {stage.wait:g} s if the run has not ended" if following else ""
    if after is None and stage.name == INTERRUPT:
        return f"stop requested: ranks save a checkpoint, then exit ({sent}){then}"
    why = f"the run did not end within {after.wait:g} s of {after.signal_names}: " if after else ""
    return f"stop: {why}{sent} ({MEANING[stage.name]}){then}"


Report = Callable[[Stage, str], None]


class Escalation:
    """Walks ``stages`` against ``target`` until the run has ended: ``begin`` takes the first stage now,
    ``run`` waits each stage's time and takes the next while anything is left. Whether the run ended."""

    def __init__(
        self,
        target: Target,
        stages: tuple[Stage, ...],
        report: Report | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        poll: float = POLL,
        taken: int = 0,
    ):
        """``taken``: how many of the first stages were already taken by someone else (``run`` goes on
        from there)."""
        self.target, self.stages, self.report = target, stages, report
        self.clock, self.sleep, self.poll = clock, sleep, poll
        self.taken: list[Stage] = list(stages[:taken])

    @property
    def reached(self) -> Stage | None:
        """The last stage taken."""
        return self.taken[-1] if self.taken else None

    def begin(self) -> int:
        """Take the first stage now (before returning: a stop is signalled before it is recorded)."""
        return self._take(0)

    async def run(self) -> bool:
        """Take the stages one after the other (the first unless ``begin`` did) until the run has ended."""
        if not self.taken and not self.target.ended():
            self._take(0)
        while self.taken:
            index = len(self.taken) - 1
            if await self._ended_within(self.stages[index].wait):
                return True
            if index + 1 >= len(self.stages):
                return self.target.ended()
            self._take(index + 1)
        return self.target.ended()

    def _take(self, index: int) -> int:
        stage = self.stages[index]
        count = self.target.signal(stage)
        self.taken.append(stage)
        if self.report is not None:
            after = self.stages[index - 1] if index else None
            following = self.stages[index + 1] if index + 1 < len(self.stages) else None
            self.report(stage, describe(stage, count, after, following))
        return count

    async def _ended_within(self, seconds: float) -> bool:
        deadline = self.clock() + seconds
        while not self.target.ended():
            left = deadline - self.clock()
            if left <= 0:
                return False
            await self.sleep(min(self.poll, left))
        return True


class FirstStageBy:
    """``target`` with its first stage replaced by ``first`` (e.g. a graceful stop that tells the ranks
    over their sockets and SIGINTs the ranks only, never the launcher)."""

    def __init__(self, target: Target, first: Callable[[], int], name: str = INTERRUPT):
        self.target, self.first, self.name = target, first, name

    def signal(self, stage: Stage) -> int:
        return self.first() if stage.name == self.name else self.target.signal(stage)

    def ended(self) -> bool:
        return self.target.ended()
