"""Supervisor ingest: events/s a real supervisor persists from 8 concurrent ranks, loss, and memory.

A real supervisor is started the way ``ctc-tui run`` starts it (``client.start_detached`` with a
``Spec``), with a long ``sleep`` as the "launcher". Then:

1. 8 sender processes connect to ``RUN_DIR/log.sock`` and each send ``--events`` step events (built
   with ``ctc_tui.core.events.make``/``encode``, written in 256-line ``sendall`` batches as the runner's
   reporter coalesces them) as fast as the supervisor takes them. Throughput = events / (time from
   the start signal until the supervisor has recorded all of them; its ``status`` counter is polled).
   After its periodic flush, ``events.jsonl`` is read back: every (rank, step) must be there once.
2. More rounds until 1,000,000 events in total have gone through; the supervisor's RSS (psutil) is
   read before the first event, after each round, and sampled during: memory must stay bounded.

``--profile`` instead runs the supervisor in this process under cProfile for one round and prints
where the ingest time goes.

Usage: python bench/ingest.py [--events 25000] [--total 1000000] [--profile]
Last line: ``ingest events_per_s=... lost=0 rss_mb_before=... rss_mb_after_1M=...``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.core import events  # noqa: E402
from ctc_tui.runs import client  # noqa: E402
from ctc_tui.supervisor import LOG_SOCKET, Spec  # noqa: E402

SENDERS = 8
BATCH = 256  # lines per sendall, as runner/report.py coalesces


def _sender(address: str, rank: int, first: int, count: int, ready, go, done) -> None:
    """One rank: pre-encode its events, wait for the start signal, send them, report the send time."""
    chunks = []
    for start in range(first, first + count, BATCH):
        lines = [
            events.encode(
                events.make(
                    "step",
                    rank,
                    step=s,
                    epoch=round(s / 1000, 4),
                    loss=1.0 / s,
                    reduced_loss=1.0 / s,
                    lr=2e-3,
                    grad_norm=0.5,
                    samples_per_second=123.4,
                    max_steps=first + count,
                )
            )
            for s in range(start, min(start + BATCH, first + count))
        ]
        chunks.append(b"".join(lines))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    ready.put(rank)
    go.wait()
    t0 = time.perf_counter()
    for chunk in chunks:
        sock.sendall(chunk)
    sock.shutdown(socket.SHUT_WR)
    sock.close()
    done.put((rank, time.perf_counter() - t0))


def one_round(
    address: str, first: int, count: int, recorded, expected: int, timeout: float = 120.0
) -> tuple[float, float]:
    """Send ``count`` events from each of 8 processes; return (seconds until all recorded, slowest sender)."""
    ctx = mp.get_context("fork")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_sender, args=(address, r, first, count, ready, go, done)) for r in range(SENDERS)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    t0 = time.perf_counter()
    go.set()
    deadline = t0 + timeout
    while recorded() < expected:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {recorded()} of {expected} events recorded after {timeout:.0f} s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    send_times = [done.get(timeout=30)[1] for _ in procs]
    for p in procs:
        p.join(10)
    return elapsed, max(send_times)


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def _status_events(run_dir: Path) -> int:
    try:
        return int(asyncio.run(client.request(run_dir, "status", timeout=5)).get("events", 0))
    except (client.NotRunning, OSError, ValueError, asyncio.TimeoutError):
        return -1


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _check(path: Path, ranks: int, steps: int) -> tuple[int, int, int]:
    """(missing (rank, step) pairs, duplicates, undecodable lines) in events.jsonl."""
    seen: set[tuple[int, int]] = set()
    dups = bad = 0
    with open(path, "rb") as handle:
        for line in handle:
            try:
                event = events.decode(line)
            except events.BadEvent:
                bad += 1
                continue
            if event["type"] != "step":
                continue
            key = (event["rank"], event["step"])
            dups += key in seen
            seen.add(key)
    missing = sum(1 for r in range(ranks) for s in range(1, steps + 1) if (r, s) not in seen)
    return missing, dups, bad


def mb(n: int) -> float:
    return n / (1 << 20)


def bench(per_sender: int, total: int) -> int:
    with tempfile.TemporaryDirectory(prefix="ctc-tui-ingest-") as tmp:
        run_dir = Path(tmp) / "run"
        spec = Spec(command=["sleep", "3600"])
        pid = client.start_detached(run_dir, spec)
        sup = psutil.Process(pid)
        try:
            address = str(run_dir / LOG_SOCKET)
            while not Path(address).exists():
                time.sleep(0.01)
            time.sleep(0.5)  # let it settle (its launcher started, first event written)
            base = _status_events(run_dir)  # the supervisor's own "starting" event
            rss_before = sup.memory_info().rss
            sampler = RssSampler(pid)
            sampler.start()
            print(f"supervisor pid {pid}, {SENDERS} senders over {address}; cores: {os.cpu_count()}")
            print(f"supervisor RSS before any event: {mb(rss_before):.1f} MB")

            sent = 0
            rounds: list[tuple[int, float, float]] = []
            rss_after_first = 0
            while sent < total:
                count = per_sender if not rounds else min(4 * per_sender, (total - sent) // SENDERS)
                if count <= 0:
                    break
                elapsed, slowest = one_round(
                    address,
                    sent // SENDERS + 1,
                    count,
                    lambda: _status_events(run_dir),
                    base + sent + SENDERS * count,
                )
                sent += SENDERS * count
                rounds.append((SENDERS * count, elapsed, slowest))
                rss = sup.memory_info().rss
                if len(rounds) == 1:
                    rss_after_first = rss
                print(
                    f"round {len(rounds)}: {SENDERS} x {count} events recorded in {elapsed:.2f} s "
                    f"= {SENDERS * count / elapsed:,.0f} events/s "
                    f"(slowest sender done after {slowest:.2f} s); "
                    f"RSS {mb(rss):.1f} MB, total {sent:,}"
                )
            rss_after = sup.memory_info().rss
            sampler.running = False
            sampler.join()

            # Persisted: after the periodic flush (every 0.5 s) every line is in events.jsonl.
            path = run_dir / "events.jsonl"
            deadline = time.monotonic() + 10
            while _count_lines(path) < base + sent and time.monotonic() < deadline:
                time.sleep(0.1)
            lines = _count_lines(path)
            missing, dups, bad = _check(path, SENDERS, sent // SENDERS)
            status = asyncio.run(client.request(run_dir, "status"))
        finally:
            try:
                client.stop(run_dir, kill=True)
            except client.NotRunning:
                pass
            try:
                sup.wait(30)
            except psutil.TimeoutExpired:
                sup.kill()
        counters_line = [json.loads(x) for x in path.read_bytes().splitlines()[-1:]]

    first_n, first_t, _ = rounds[0]
    all_n = sum(r[0] for r in rounds)
    all_t = sum(r[1] for r in rounds)
    rate = first_n / first_t
    lost = missing
    print(
        f"events.jsonl: {lines:,} lines ({base} from the supervisor itself), {sent:,} step events sent, "
        f"{missing} missing, {dups} duplicated, {bad} undecodable; "
        f"supervisor counted {status.get('events')} events"
    )
    print(
        f"throughput: first round {rate:,.0f} events/s; all rounds {all_n / all_t:,.0f} events/s "
        f"({all_n:,} events in {all_t:.1f} s)"
    )
    print(
        f"supervisor RSS: before {mb(rss_before):.1f} MB, "
        f"after first {first_n:,} {mb(rss_after_first):.1f} MB, "
        f"after {all_n:,} {mb(rss_after):.1f} MB, peak {mb(sampler.peak):.1f} MB"
    )
    if counters_line and counters_line[-1].get("type") == "exit":
        print(f"supervisor dropped: {counters_line[-1].get('dropped')}")
    goal = "meets" if rate >= 20_000 else "MISSES"
    print(f"goal >= 20,000 events/s: {goal}")
    print(
        f"ingest events_per_s={rate:.0f} events_per_s_1M={all_n / all_t:.0f} lost={lost} dup={dups} "
        f"rss_mb_before={mb(rss_before):.1f} rss_mb_after_1M={mb(rss_after):.1f} "
        f"rss_mb_peak={mb(sampler.peak):.1f}"
    )
    return 0 if lost == 0 and dups == 0 and bad == 0 and lines == base + sent else 1


def profile(per_sender: int) -> int:
    """The supervisor in this process under cProfile, for one round: where does ingest time go?"""
    import cProfile
    import pstats

    from ctc_tui.supervisor import Supervisor

    with tempfile.TemporaryDirectory(prefix="ctc-tui-ingest-prof-") as tmp:
        run_dir = Path(tmp) / "run"
        sup = Supervisor(run_dir, ["sleep", "3600"])
        expected = SENDERS * per_sender + 1
        result: dict[str, float] = {}

        def drive() -> None:
            address = run_dir / LOG_SOCKET
            while not address.exists() or sup.counters.events < 1:
                time.sleep(0.01)
            elapsed, _ = one_round(str(address), 1, per_sender, lambda: sup.counters.events, expected)
            result["elapsed"] = elapsed

        async def main() -> None:
            task = asyncio.create_task(sup.run())
            driver = threading.Thread(target=drive)
            driver.start()
            while driver.is_alive():
                await asyncio.sleep(0.05)
            await sup.kill()
            await task

        prof = cProfile.Profile()
        prof.enable()
        asyncio.run(main())
        prof.disable()
    print(
        f"in-process supervisor under cProfile: {SENDERS * per_sender:,} events in {result['elapsed']:.2f} s "
        f"= {SENDERS * per_sender / result['elapsed']:,.0f} events/s (profiler overhead included)"
    )
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=25_000, help="events per sender in the measured round")
    parser.add_argument("--total", type=int, default=1_000_000, help="events in all rounds together")
    parser.add_argument("--profile", action="store_true", help="profile the supervisor's ingest path instead")
    args = parser.parse_args()
    if args.profile:
        return profile(args.events)
    return bench(args.events, args.total)


if __name__ == "__main__":
    sys.exit(main())
