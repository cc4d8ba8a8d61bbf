"""The stop sequence (ctc_tui.supervisor.escalation), against a fake process table on a fake clock: SIGINT,
then after the grace SIGCONT + SIGTERM, then SIGKILL, each stage reported, none taken once the run has
ended; the supervisor's graceful stop and its teardown walk it; stop_grace_seconds reaches the supervisor.
The real SIGSTOPped rank is tests/integration/test_stop_escalation.py."""

from __future__ import annotations

import asyncio
import os
import signal
from types import SimpleNamespace

import pytest

from ctc_tui.supervisor import escalation
from ctc_tui.supervisor.escalation import Escalation, FirstStageBy, Stage, plan


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Processes:
    """A fake process table: each process has the signals that end it (a SIGSTOPped one takes none until
    SIGCONT; one that ignores SIGINT needs SIGTERM ...)."""

    def __init__(self, clock: FakeClock, **ends_on: set[int]):
        self.clock = clock
        self.ends_on = ends_on
        self.stopped: set[str] = set()
        self.sent: list[tuple[float, str, int]] = []
        self.exit_after: dict[str, float] = {}  # a process that ends some seconds after its signal

    def signal(self, stage: Stage) -> int:
        living = [name for name in self.ends_on if name not in self.gone()]
        for name in living:
            for sig in stage.signals:
                self.sent.append((self.clock.now, name, sig))
                if sig == signal.SIGCONT:
                    self.stopped.discard(name)
                elif sig == signal.SIGKILL or (sig in self.ends_on[name] and name not in self.stopped):
                    self.exit_after.setdefault(name, self.clock.now + (0 if sig == signal.SIGKILL else 1.0))
        return len(living)

    def gone(self) -> set[str]:
        return {name for name, at in self.exit_after.items() if at <= self.clock.now}

    def ended(self) -> bool:
        return self.gone() == set(self.ends_on)


def walk(processes: Processes, stages, clock: FakeClock) -> tuple[bool, list[str]]:
    lines: list[str] = []
    run = Escalation(processes, stages, lambda stage, line: lines.append(line), clock, clock.sleep)
    return asyncio.run(run.run()), lines


def test_ranks_that_save_and_exit_end_the_stop_at_its_first_stage():
    clock = FakeClock()
    procs = Processes(clock, rank0={signal.SIGINT}, rank1={signal.SIGINT})
    ended, lines = walk(procs, plan(120.0), clock)
    assert ended and {sig for _, _, sig in procs.sent} == {signal.SIGINT}
    assert clock.now < 2.0
    assert lines == [
        "stop requested: ranks save a checkpoint, then exit (SIGINT to 2 processes); "
        "SIGCONT + SIGTERM in 120 s if the run has not ended"
    ]


def test_a_sigstopped_rank_gets_sigcont_and_sigterm_after_the_grace():
    clock = FakeClock()
    procs = Processes(clock, rank0={signal.SIGINT}, rank1={signal.SIGINT, signal.SIGTERM})
    procs.stopped.add("rank1")  # kill -STOP: it takes no signal but SIGKILL and SIGCONT
    ended, lines = walk(procs, plan(120.0), clock)
    assert ended
    to_rank1 = [(at, sig) for at, name, sig in procs.sent if name == "rank1"]
    assert to_rank1 == [(0.0, signal.SIGINT), (120.0, signal.SIGCONT), (120.0, signal.SIGTERM)]
    assert 120.0 < clock.now < 122.0
    assert lines[1] == (
        "stop: the run did not end within 120 s of SIGINT: SIGCONT + SIGTERM to 1 process "
        "(stop at once, no save); SIGKILL in 5 s if the run has not ended"
    )


def test_a_process_that_ignores_sigterm_is_killed_after_the_term_wait():
    clock = FakeClock()
    procs = Processes(clock, rank0=set())  # ignores SIGINT and SIGTERM (a hung save)
    ended, lines = walk(procs, plan(30.0, term_wait=5.0, kill_wait=5.0), clock)
    assert ended and [(at, sig) for at, _, sig in procs.sent] == [
        (0.0, signal.SIGINT),
        (30.0, signal.SIGCONT),
        (30.0, signal.SIGTERM),
        (35.0, signal.SIGKILL),
    ]
    assert (
        lines[-1]
        == "stop: the run did not end within 5 s of SIGCONT + SIGTERM: SIGKILL to 1 process (no choice)"
    )


def test_a_kill_starts_at_sigterm_and_a_run_already_over_is_not_signalled():
    assert [s.name for s in plan(None)] == [escalation.TERMINATE, escalation.KILL]
    clock = FakeClock()
    procs = Processes(clock, rank0={signal.SIGTERM})
    assert walk(procs, plan(None), clock)[0] and procs.sent[0][2] == signal.SIGCONT
    over = Processes(clock)
    ended, lines = walk(over, plan(10.0), clock)
    assert ended and over.sent == [] and lines == []


def test_begin_signals_at_once_and_run_goes_on_from_there():
    clock = FakeClock()
    procs = Processes(clock, rank0={signal.SIGTERM})
    run = Escalation(procs, plan(10.0), None, clock, clock.sleep)
    assert run.begin() == 1 and procs.sent == [(0.0, "rank0", signal.SIGINT)]  # before any await
    assert asyncio.run(run.run()) and run.reached is not None and run.reached.name == escalation.TERMINATE
    assert [sig for _, _, sig in procs.sent].count(signal.SIGINT) == 1


def test_the_first_stage_can_be_someone_elses_signal():
    clock = FakeClock()
    procs = Processes(clock, rank0={signal.SIGINT})
    told: list[str] = []
    target = FirstStageBy(procs, lambda: told.append("socket + SIGINT to the ranks only") or 2)
    run = Escalation(target, plan(10.0), None, clock, clock.sleep)
    assert run.begin() == 2 and told and procs.sent == []
    assert asyncio.run(run.run())  # the process never heard that first stage: SIGCONT + SIGTERM follow
    assert procs.sent[0] == (10.0, "rank0", signal.SIGCONT)


def test_stop_grace_seconds_is_a_documented_preset_field_that_reaches_the_supervisor(tmp_path):
    from ctc_tui.core.fielddocs import field_doc
    from ctc_tui.core.preset import load_preset
    from ctc_tui.core.shipped import find_preset
    from ctc_tui.runs.service import PreparedRun, supervisor_spec

    preset = load_preset(find_preset("demo-cpu"), ["launch.stop_grace_seconds=7"])
    assert load_preset(find_preset("demo-cpu"), []).launch.stop_grace_seconds == escalation.STOP_GRACE == 120
    assert "SIGTERM" in field_doc("launch.stop_grace_seconds")
    spec = supervisor_spec(PreparedRun(preset=preset, run_dir=tmp_path, command=("true",)))
    assert spec.stop_grace == 7.0
    from ctc_tui.core.problems import PresetError

    with pytest.raises(PresetError):
        load_preset(find_preset("demo-cpu"), ["launch.stop_grace_seconds=0"])


def test_the_supervisors_stop_escalates_and_its_reason_says_so(tmp_path):
    from types import SimpleNamespace

    from ctc_tui.supervisor import Spec, Supervisor

    sent: list[str] = []

    class Tree:
        running = True
        left = True

        def interrupt_ranks(self) -> int:
            sent.append("SIGINT ranks")
            return 1

        def signal(self, stage: Stage) -> int:
            sent.append(stage.signal_names)
            self.left = stage.name != escalation.TERMINATE
            return 1

        def ended(self) -> bool:
            return not self.left

        async def stop(self, graceful: bool = True) -> None:
            sent.append("teardown")

    sup = Supervisor(tmp_path, ["true"], env={}, spec=Spec(command=["true"], stop_grace=0.3))
    sup.log.open()
    sup.tree = Tree()  # type: ignore[assignment]
    sup.process = SimpleNamespace(pid=1, returncode=None)

    async def main() -> None:
        assert sup.request_stop()
        await sup.teardown()

    asyncio.run(main())
    sup.log.close()
    assert sent == ["SIGINT ranks", "SIGCONT + SIGTERM", "teardown"]
    assert sup.escalated is not None and sup.escalated.name == escalation.TERMINATE
    code, state, reason = sup._ending(-15)
    assert (code, state) == (-15, "failed")
    assert (
        reason == "the stop was not done within launch.stop_grace_seconds (0.3 s): ended by SIGCONT + SIGTERM"
    )


def test_a_stop_without_any_supervisor_walks_the_same_escalation_on_the_recorded_processes(
    tmp_path, monkeypatch
):
    """No supervisor could adopt the run: ``stop`` SIGINTs the recorded ranks, and its wait walks on from
    there, SIGCONT + SIGTERM to the launcher's group and the ranks after the run's grace."""
    from ctc_tui.runs import service
    from ctc_tui.supervisor import Spec, runrecord

    sent: list[tuple[str, int]] = []

    class Rank:
        def send_signal(self, sig: int) -> None:
            sent.append(("rank", sig))

    class Record:
        process_group = os.getpgid(0)  # the launcher (this process, as recorded) still leads its group
        alive = True  # a SIGSTOPped rank: deaf to SIGINT, gone at SIGTERM once continued

        def launcher(self):
            return SimpleNamespace(pid=os.getpid()) if self.alive else None

        def launcher_alive(self) -> bool:
            return self.alive

        def local_ranks(self) -> dict:
            return {0: Rank()} if self.alive else {}

        def any_alive(self) -> bool:
            return self.alive

    record = Record()

    def killpg(group: int, sig: int) -> None:
        sent.append(("group", sig))
        record.alive = record.alive and sig != signal.SIGTERM

    monkeypatch.setattr(runrecord.os, "killpg", killpg)
    monkeypatch.setattr(runrecord.ProcessRecord, "load", classmethod(lambda cls, run_dir: record))
    Spec(command=["true"], stop_grace=0.2).save(tmp_path)
    assert runrecord.signal_directly(tmp_path, kill=False) == 1 and sent == [("rank", signal.SIGINT)]
    lines: list[str] = []
    result = service.StopResult(run_dir=tmp_path, kill=False, reply={"ok": True, "acted": True}, how="direct")
    assert service.wait_ended(result, say=lines.append) == "ended by SIGCONT + SIGTERM"
    assert sent[1:] == [("group", signal.SIGCONT), ("group", signal.SIGTERM)]
    assert lines == [
        "stop: the run did not end within 0.2 s of SIGINT: SIGCONT + SIGTERM to 1 process "
        "(stop at once, no save); SIGKILL in 5 s if the run has not ended"
    ]
