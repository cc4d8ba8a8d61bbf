"""Multi-node runs for real, with two "hosts" made of Linux network namespaces on this machine.

The fixture builds a small cluster: two network namespaces (the compute nodes), each with loopback,
an ``eth0`` with its own address and an ``/etc/netns/NS/hosts``, on one switch (a bridge in a third
namespace) with the root namespace: the login node, where ``ctc-tui run`` and its supervisor run.
``ctc-tui run`` then starts the demo preset with a hostfile naming the two nodes by address, exactly
as on a cluster:

- ``launch.launcher=mpi``: the real ``mpirun --hostfile`` starts its ``orted`` daemons on the two
  nodes, which start one rank each; the ranks train together over gloo (MASTER_ADDR is the first
  node's address) and send their events over TCP, with the run's token, to the supervisor's advertised
  address on the login node.
- ``launch.launcher=deepspeed``: the real DeepSpeed launcher checks ssh, then runs ``pdsh``, which starts
  ``deepspeed.launcher.launch`` on each node; the ranks' environment (log address, token, ...) reaches
  them only through the ``.deepspeed_env`` the supervisor writes.

The one thing replaced is ``ssh``: ``tests/netns_ssh.sh`` is put first on PATH as ``ssh`` and turns
``ssh HOST COMMAND`` into ``ip netns exec NS unshare --uts sh -c COMMAND`` with a fresh login
environment (so nothing reaches a rank unless the launcher forwards it) and the node's own host name.
Everything else (ctc-tui check's ssh probe, mpirun's daemons, DeepSpeed's ssh check, pdsh) runs as it
would between machines. Each rank's process is checked to live in its node's network namespace, and
an intruder inside a node that connects without the token is counted and never recorded.

Needs root (``ip netns``, iproute2) as in CI; without it the test fails and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, events_of

pytestmark = pytest.mark.slow

SMALL = [
    "training.max_steps=4",
    "training.logging_steps=2",
    "training.per_device_train_batch_size=4",
    "training.per_device_eval_batch_size=8",
    "data.max_train_samples=32",
    "data.max_eval_samples=8",
    'training.save_strategy="no"',
    'training.eval_strategy="no"',
    "training.do_eval=true",
]


@dataclass
class Node:
    name: str  # its host name (UTS namespace)
    ns: str  # its network namespace
    ip: str


@dataclass
class Cluster:
    login_ip: str  # the login node's address on the cluster network
    nodes: list[Node]
    bin_dir: Path  # holds the `ssh` that reaches the namespaces
    map_file: Path
    namespaces: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "CTC_TEST_NETNS_MAP": str(self.map_file),
        }

    def hostfile(self, path: Path) -> Path:
        path.write_text("".join(f"{node.ip} slots=1\n" for node in self.nodes))
        return path


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(
            f"`ip {' '.join(args)}` failed: {proc.stderr.strip()} (the multi-node test builds "
            "network namespaces: it needs root and iproute2, as in CI)"
        )
    return proc.stdout


def _kill_namespace_processes(ns: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", ns], check=False, capture_output=True, text=True, timeout=30)
    for pid in out.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def cluster(tmp_path):
    """Two nodes and the login node (this namespace) on one switch; all removed again whatever happens.

    The switch is a bridge in a namespace of its own, so the host's firewall (Docker's FORWARD DROP with
    br_netfilter, say) never sees node-to-node traffic. Interfaces inside namespaces have their own
    names: each node has ``eth0``; only the login node's end is named uniquely here."""
    if os.geteuid() != 0:
        pytest.fail("the multi-node test builds network namespaces (ip netns): run it as root, as CI does")
    for tool in ("ip", "unshare", "hostname"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: apt-get install iproute2 util-linux hostname")
    tag = f"{random.randrange(16**6):06x}"
    used = _ip("-4", "-o", "addr")
    while True:
        net = f"10.{random.randrange(100, 250)}.{random.randrange(256)}"
        if f" {net}." not in used:
            break
    switch = f"ctc-{tag}-sw"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").symlink_to(REPO / "tests" / "netns_ssh.sh")
    cl = Cluster(login_ip=f"{net}.1", nodes=[], bin_dir=bin_dir, map_file=tmp_path / "netns.map")
    try:
        _ip("netns", "add", switch)
        cl.namespaces.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        login = f"ctc{tag}"
        _ip("link", "add", login, "type", "veth", "peer", "name", "login", "netns", switch)
        _ip("-n", switch, "link", "set", "login", "master", "br0", "up")
        _ip("addr", "add", f"{cl.login_ip}/24", "dev", login)
        _ip("link", "set", login, "up")
        for i in (1, 2):
            node = Node(name=f"node{i}-{tag}", ns=f"ctc-{tag}-n{i}", ip=f"{net}.{i + 1}")
            _ip("netns", "add", node.ns)
            cl.namespaces.append(node.ns)
            _ip(
                "-n",
                switch,
                "link",
                "add",
                f"port{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.ns,
            )
            _ip("-n", switch, "link", "set", f"port{i}", "master", "br0", "up")
            _ip("-n", node.ns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            _ip("-n", node.ns, "link", "set", "eth0", "up")
            _ip("-n", node.ns, "link", "set", "lo", "up")
            cl.nodes.append(node)
        hosts = "127.0.0.1 localhost\n" + "".join(f"{n.ip} {n.name}\n" for n in cl.nodes)
        for node in cl.nodes:  # each node resolves the nodes' names (gloo binds to its host name's address)
            etc = Path("/etc/netns") / node.ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)
        cl.map_file.write_text("".join(f"{n.ip} {n.ns} {n.name}\n" for n in cl.nodes))
        yield cl
    finally:  # deleting a namespace deletes its interfaces and their peers (the login node's too)
        for ns in cl.namespaces:
            _kill_namespace_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=30)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def netns_of(pid: int) -> str:
    """The name of the network namespace process ``pid`` lives in ("" for the root namespace)."""
    return subprocess.run(
        ["ip", "netns", "identify", str(pid)], check=False, capture_output=True, text=True, timeout=30
    ).stdout.strip()


INTRUDER = textwrap.dedent("""
    import json, socket, sys
    host, port = sys.argv[1], int(sys.argv[2])
    event = json.dumps({"type": "step", "t": 1.0, "rank": 9, "step": 99, "loss": 0.0}).encode() + b"\\n"
    for payload in (event, b'{"token": "not-the-token"}\\n' + event):
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(payload)
            while sock.recv(4096):  # the supervisor hangs up on us
                pass
    print("hung up twice")
""")


@dataclass
class ArgvWatch:
    """Every process's argv on this machine (the nodes' processes too: namespaces share the process
    table), looked at over and over while a run runs: none may hold a secret (``ps`` shows argv to every
    user). The run's token is read from the run dir once the supervisor has written it."""

    run_dir: Path
    secrets: list[str]
    looks: int = 0
    seen: set[str] = field(default_factory=set)  # the programs / modules seen, to show the look saw them
    leaks: list[str] = field(default_factory=list)

    def look(self) -> None:
        import psutil

        token_file = self.run_dir / "run-token"
        if len(self.secrets) < 2 and token_file.exists():
            self.secrets.append(token_file.read_text().strip())
        for proc in psutil.process_iter(["cmdline"]):
            argv = " ".join(proc.info["cmdline"] or [])
            known = ("pdsh", "deepspeed.launcher.launch", "orted", "ctc_tui.runner")
            self.seen.update(w for w in known if w in argv)
            leak = f"{proc.pid}: {argv[:300]}"
            if any(secret and secret in argv for secret in self.secrets) and leak not in self.leaks:
                self.leaks.append(leak)
        self.looks += 1


def launch_and_watch(
    cluster: Cluster,
    run_dir: Path,
    launcher: str,
    hostfile: Path,
    timeout: float = 240,
    env: dict[str, str] | None = None,
    argv_watch: ArgvWatch | None = None,
):
    """``ctc-tui run`` with ``hostfile`` (and ``env``); while it runs, find each rank's network namespace,
    try to get in from a node without the token, and (``argv_watch``) look at every process's argv.
    Returns (exit code, output, {rank: namespace}, intruder output)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctc_tui",
            "run",
            "demo-cpu",
            f"launch.launcher={launcher}",
            f"launch.hostfile={hostfile}",
            *SMALL,
            "--output-dir",
            str(run_dir),
            "--plain",
        ],
        cwd=REPO,
        env={**os.environ, **cluster.env(), "CTC_TUI_LOG_HOST": "", **(env or {})},  # the address is found
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    namespaces: dict[int, str] = {}
    intruder = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if argv_watch is not None:
                argv_watch.look()
            elif len(namespaces) == 2 and intruder:
                break
            for event in events_of(run_dir):
                if event["type"] == "hello" and event["rank"] not in namespaces:
                    namespaces[event["rank"]] = netns_of(event["pid"])
            if len(namespaces) == 2 and intruder is None:
                host, _, port = events_of(run_dir)[0]["log_address"].rpartition(":")
                intruder = subprocess.run(
                    ["ip", "netns", "exec", cluster.nodes[1].ns, sys.executable, "-c", INTRUDER, host, port],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, namespaces, intruder


def check_run(
    cluster: Cluster, run_dir: Path, code: int, out: str, namespaces: dict[int, str], intruder
) -> list[dict]:
    """What both launchers must show: two ranks on two nodes, trained together, every event over TCP."""
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted((run_dir / "logs").glob("*.log"))
    )
    assert code == 0, out[-3000:] + logs
    evs = events_of(run_dir)
    starting = evs[0]
    assert starting["type"] == "state" and starting["state"] == "starting"
    # The supervisor told the ranks its address on the cluster network (the route to the nodes), not a
    # name that resolves only here, and it is TCP, not the run dir's Unix socket.
    assert starting["log_address"].rpartition(":")[0] == cluster.login_ip, starting["log_address"]
    spec = json.loads((run_dir / "supervisor.json").read_text())
    assert spec["tcp_advertise"] == cluster.login_ip and len(spec["token"]) >= 24

    # Rank r ran on hostfile line r: in that node's network namespace, under that node's host name.
    assert namespaces == {0: cluster.nodes[0].ns, 1: cluster.nodes[1].ns}, namespaces
    hellos = {e["rank"]: e for e in evs if e["type"] == "hello"}
    assert {r: h["host"] for r, h in hellos.items()} == {0: cluster.nodes[0].name, 1: cluster.nodes[1].name}
    assert all(h["world_size"] == 2 for h in hellos.values())

    # Both ranks' steps reached the supervisor (each its own loss), then the eval of rank 0.
    steps = sorted((e["rank"], e["step"]) for e in evs if e["type"] == "step")
    assert steps == [(0, 2), (0, 4), (1, 2), (1, 4)], steps
    assert any(e["type"] == "eval" and e["rank"] == 0 for e in evs)
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0

    # The intruder inside node 2 was hung up on twice, counted, and none of its events was recorded.
    assert intruder is not None and intruder.returncode == 0, intruder and intruder.stderr[-2000:]
    assert not [e for e in evs if e["rank"] == 9]
    last = evs[-1]
    assert last["type"] == "exit" and last["code"] == 0 and last["state"] == "done"
    assert {k: v for k, v in last["dropped"].items() if v} == {"unauthenticated": 2}, last  # of any reason
    return evs


def test_mpirun_runs_ranks_on_two_network_namespaces(tmp_path, demo_data, cluster):
    assert shutil.which("mpirun"), "apt-get install openmpi-bin"
    run_dir = tmp_path / "run"
    hostfile = cluster.hostfile(tmp_path / "hostfile")
    hub_token = f"hf_test{random.randrange(16**12):012x}"
    watch = ArgvWatch(run_dir, [hub_token])
    code, out, namespaces, intruder = launch_and_watch(
        cluster, run_dir, "mpi", hostfile, env={"HF_TOKEN": hub_token}, argv_watch=watch
    )
    check_run(cluster, run_dir, code, out, namespaces, intruder)
    # No argv (mpirun's, its orted daemons', the ranks') held the run token or HF_TOKEN (issue 11).
    assert len(watch.secrets) == 2 and watch.looks > 10 and {"orted", "ctc_tui.runner"} <= watch.seen, watch
    assert watch.leaks == [], watch.leaks
    command = (run_dir / "command.sh").read_text()
    assert f"--hostfile {hostfile}" in command
    assert f"export MASTER_ADDR={cluster.nodes[0].ip}\n" in command  # rank 0's node, not localhost
    assert "CTC_TUI_TOKEN" not in command  # ranks read RUN_DIR/run-token (issue 11)
    for name in (
        "CTC_TUI_LOG_SOCKET",
        "CTC_TUI_RUN_DIR",
        "CTC_TUI_CACHE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        assert f"-x {name}" in command


def test_deepspeed_runs_ranks_on_two_network_namespaces(tmp_path, demo_data, cluster):
    assert shutil.which("deepspeed"), "pip install deepspeed"
    assert shutil.which("pdsh"), "apt-get install pdsh (the DeepSpeed launcher's default multi-node runner)"
    run_dir = tmp_path / "run"
    hostfile = cluster.hostfile(tmp_path / "hostfile")
    hub_token = f"hf_test{random.randrange(16**12):012x}"
    watch = ArgvWatch(run_dir, [hub_token])
    code, out, namespaces, intruder = launch_and_watch(
        cluster, run_dir, "deepspeed", hostfile, env={"HF_TOKEN": hub_token}, argv_watch=watch
    )
    check_run(cluster, run_dir, code, out, namespaces, intruder)
    command = (run_dir / "command.sh").read_text()
    assert f"--hostfile {hostfile}" in command and f"--master_addr {cluster.nodes[0].ip}" in command
    # No process's argv held the run's token or HF_TOKEN, pdsh's and the ranks' included (issue 11).
    assert len(watch.secrets) == 2 and watch.looks > 10, watch
    assert {"pdsh", "deepspeed.launcher.launch", "ctc_tui.runner"} <= watch.seen, watch.seen
    assert watch.leaks == [], watch.leaks
    # What reached the ranks came through the .deepspeed_env the supervisor wrote; no secret is in it:
    # the ranks read the token and the Hub token from 0600 files in the (shared) run dir.
    ds_env = run_dir / ".deepspeed_env"
    assert (os.stat(ds_env).st_mode & 0o777) == 0o600
    values = dict(line.split("=", 1) for line in ds_env.read_text().splitlines())
    spec = json.loads((run_dir / "supervisor.json").read_text())
    assert "CTC_TUI_TOKEN" not in values and "HF_TOKEN" not in values
    assert spec["token"] not in ds_env.read_text() and hub_token not in ds_env.read_text()
    for secret, name in ((spec["token"], "run-token"), (hub_token, "hf-token")):
        assert (run_dir / name).read_text() == secret and (os.stat(run_dir / name).st_mode & 0o777) == 0o600
    logs = "".join(p.read_text(errors="replace") for p in (run_dir / "logs").iterdir())
    assert spec["token"] not in logs and hub_token not in logs
    assert (os.stat(run_dir).st_mode & 0o777) == 0o700
    assert values["CTC_TUI_LOG_SOCKET"] == events_of(run_dir)[0]["log_address"]
    assert values["MASTER_ADDR"] == cluster.nodes[0].ip


def test_deepspeed_refuses_a_command_in_the_run_dir_and_check_never_gives_ssh_an_option(tmp_path, cluster):
    """``$(...)`` in training.output_dir would run on every node in DeepSpeed's double-quoted remote
    shell: refused before anything starts, with the pre-flight check and without. A hostfile host that
    starts with '-' would be an ssh option (``-oProxyCommand=...`` runs a command): refused where the
    hostfile is read, so the real ssh never sees it."""
    marker = Path(f"/tmp/PWNED-{random.randrange(16**8):08x}")
    hostfile = cluster.hostfile(tmp_path / "hostfile")
    env = {**os.environ, **cluster.env()}
    short = Path(tempfile.mkdtemp(prefix="ctc-", dir="/tmp"))  # room for the run dir's socket paths
    try:
        for no_check in ([], ["--no-check"]):
            run_dir = f"{short}/run$(touch {marker})"
            proc = subprocess.run(
                [sys.executable, "-m", "ctc_tui", "run", "demo-cpu", "launch.launcher=deepspeed"]
                + [f"launch.hostfile={hostfile}", *SMALL, "--output-dir", run_dir, "--plain", *no_check],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "training.output_dir" in proc.stderr and "holds '$'" in proc.stderr, proc.stderr
            assert "nothing was started" in proc.stderr and "Traceback" not in proc.stderr
            assert not list(short.iterdir())
        script = tmp_path / "evil"
        script.write_text(f"#!/bin/sh\ntouch {marker}\n")
        script.chmod(0o755)
        hostfile.write_text(f"{cluster.nodes[0].ip} slots=1\n-oProxyCommand={script} slots=1\n")
        proc = subprocess.run(  # the real ssh: this machine's, not the namespaces' stand-in
            [sys.executable, "-m", "ctc_tui", "check", "demo-cpu", f"launch.hostfile={hostfile}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and f"{hostfile}:2: host '-oProxyCommand=" in proc.stdout + proc.stderr
        time.sleep(0.5)
        for node in cluster.nodes:  # nothing ran anywhere (the nodes share this file system)
            probe = ["ip", "netns", "exec", node.ns, "test", "-e", str(marker)]
            assert subprocess.run(probe, check=False, timeout=30).returncode == 1
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)
        shutil.rmtree(short, ignore_errors=True)
