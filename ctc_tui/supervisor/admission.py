"""Which events of the ranks' connections the supervisor records: who may speak for whom, and how much.

The supervisor owns rank -1 (its own events: the run's start, its end, its notices) and the run's world
size (from the launch spec, never from a rank). So, for each event that decoded and kept the rules of
its type (``events.validate``, which also refuses a rank outside the world):

- an event of rank -1 is *forged*: a rank cannot end the run for the supervisor;
- a ``hello`` must name the run's world size (else *invalid*); the first one on a connection binds the
  connection to its rank, pid and host, and claims the rank: a later hello on that connection naming
  another rank, pid or host, or a hello from another connection claiming a claimed rank with another pid
  or host, is *forged* (a rank that reconnects says the same hello again and is let in);
- after its hello a connection speaks for its own rank only, and no connection speaks for a claimed
  rank without having said its hello (*forged*);
- each rank has a budget of events and bytes (a token bucket each: ``Limits.rank_*``); what is over
  it is *rate_limited*.

What is refused is counted by its reason and told in a notice (``limits.Notices``), never recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctc_tui.supervisor.limits import Limits

FORGED = "forged"
INVALID = "invalid"
RATE_LIMITED = "rate_limited"


class Budget:
    """One rank's token buckets, events and bytes: full at first (the bursts), refilled at their rates up
    to the bursts. Refilled lazily, when an event does not fit: never more than a burst either way."""

    __slots__ = ("events", "bytes", "last")

    def __init__(self, limits: Limits, now: float):
        self.events = float(limits.rank_events_burst)
        self.bytes = float(limits.rank_bytes_burst)
        self.last = now

    def refill(self, limits: Limits, now: float) -> None:
        elapsed = max(0.0, now - self.last)
        self.last = now
        self.events = min(float(limits.rank_events_burst), self.events + elapsed * limits.rank_events_per_s)
        self.bytes = min(float(limits.rank_bytes_burst), self.bytes + elapsed * limits.rank_bytes_per_s)


@dataclass
class Peer:
    """One rank connection: whom it speaks for once its first hello was admitted, and when it last sent."""

    rank: int | None = None
    identity: tuple[Any, Any] = (None, None)  # (pid, host) of its hello
    seen: float = 0.0  # unix seconds of its last line
    budget: Budget | None = None  # its rank's, once bound


@dataclass
class Refusal:
    """Why an event was not recorded: the counter it goes to, and one line for the notice."""

    kind: str
    text: str


class Admission:
    """The rules above for one run: ``check`` each event of a connection (its ``Peer``)."""

    def __init__(self, world: int | None = None, limits: Limits | None = None):
        """``world``: the run's world size from its launch spec (None: unknown, an older spec; then no
        hello sets it, and ranks 0 and up are taken)."""
        self.world = world
        self.limits = limits or Limits()
        self.claims: dict[int, tuple[Any, Any]] = {}  # rank -> (pid, host) of its admitted hello
        self.budgets: dict[int, Budget] = {}

    def seed(self, history: list[dict[str, Any]]) -> None:
        """The claims of a run's recorded hellos (a supervisor adopting a run): its ranks reconnect."""
        for event in history:
            if event.get("type") == "hello" and isinstance(event.get("rank"), int) and event["rank"] >= 0:
                self.claims.setdefault(event["rank"], (event.get("pid"), event.get("host")))

    def check(self, event: dict[str, Any], size: int, now: float, peer: Peer) -> Refusal | None:
        """None if ``event`` (``size`` bytes, received at ``now``) from ``peer`` may be recorded; else why
        not. An admitted hello binds ``peer`` to its rank. (On the ingest's hot path: a bound
        connection's own event within its budget returns at once.)"""
        budget = peer.budget
        if event["rank"] == peer.rank and budget is not None and event["type"] != "hello":
            if budget.events >= 1 and budget.bytes >= size:
                budget.events -= 1
                budget.bytes -= size
                return None
            return self._spend(budget, event, size, now)
        return self._check(event, size, now, peer)

    def _check(self, event: dict[str, Any], size: int, now: float, peer: Peer) -> Refusal | None:
        rank = event["rank"]
        if rank < 0:
            return Refusal(
                FORGED, f"refused a {event['type']} event of rank {rank}: that rank is the supervisor's"
            )
        hello = event["type"] == "hello"
        if hello:
            refusal = self._hello(event, rank, peer)
        elif peer.rank is not None:
            refusal = None if rank == peer.rank else self._other_rank(event, peer)
        else:
            refusal = self._unintroduced(event) if rank in self.claims else None
        budget = self.budgets.get(rank)
        if budget is None:
            budget = self.budgets[rank] = Budget(self.limits, now)
        refusal = refusal or self._spend(budget, event, size, now)
        if hello and refusal is None:
            peer.rank, peer.identity, peer.budget = rank, (event.get("pid"), event.get("host")), budget
            self.claims[rank] = peer.identity
        return refusal

    def _hello(self, event: dict[str, Any], rank: int, peer: Peer) -> Refusal | None:
        world = event["world_size"]
        if self.world is not None and world != self.world:
            return Refusal(
                INVALID,
                f"refused a hello of rank {rank} naming world size {world}: the run's is {self.world}",
            )
        identity = (event.get("pid"), event.get("host"))
        if peer.rank is not None and (peer.rank, peer.identity) != (rank, identity):
            return Refusal(
                FORGED,
                f"refused a second hello on the connection of rank {peer.rank} (pid {peer.identity[0]}) "
                f"claiming rank {rank}, pid {identity[0]}",
            )
        claimed = self.claims.get(rank)
        if claimed is not None and claimed != identity:
            return Refusal(
                FORGED,
                f"refused a hello claiming rank {rank} with pid {identity[0]} on {identity[1]}: rank {rank} "
                f"is pid {claimed[0]} on {claimed[1]}",
            )
        return None

    @staticmethod
    def _other_rank(event: dict[str, Any], peer: Peer) -> Refusal:
        return Refusal(
            FORGED,
            f"refused a {event['type']} event of rank {event['rank']} on the connection of rank {peer.rank}",
        )

    @staticmethod
    def _unintroduced(event: dict[str, Any]) -> Refusal:
        return Refusal(
            FORGED,
            f"refused a {event['type']} event of rank {event['rank']} from a connection that has not said "
            "that rank's hello",
        )

    def _spend(self, budget: Budget, event: dict[str, Any], size: int, now: float) -> Refusal | None:
        """Take one event of ``size`` bytes from ``budget`` (refilled first if it has not enough); a
        Refusal when it still has not."""
        if budget.events < 1 or budget.bytes < size:
            budget.refill(self.limits, now)
            if budget.events < 1 or budget.bytes < size:
                limits = self.limits
                return Refusal(
                    RATE_LIMITED,
                    f"dropped a {event['type']} event of rank {event['rank']}: over its budget of "
                    f"{limits.rank_events_per_s:,.0f} events and {limits.rank_bytes_per_s / 2**20:,.1f} MiB "
                    "a second",
                )
        budget.events -= 1
        budget.bytes -= size
        return None
