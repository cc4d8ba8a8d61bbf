"""Hostfiles (``host slots=N`` lines) and the addresses derived from them: rank 0's (``master_addr``)
and the one ranks on other hosts reach this machine at (``advertise_address`` / ``route_address``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.core.hosts import host_problem

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset


def read_hostfile(path: str | Path) -> list[tuple[str, int]]:
    """``host slots=N`` lines (comments and blank lines ignored); a host must be a host name or address
    (``ctc_tui.core.hosts``), as it reaches ssh, pdsh and remote shells."""
    hosts = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        problem = host_problem(parts[0])
        if problem:
            raise ValueError(f"{path}:{number}: {problem}")
        slots = 1
        for part in parts[1:]:
            if part.startswith("slots="):
                value = part.split("=", 1)[1]
                if not value.isdigit() or int(value) < 1:
                    raise ValueError(f"{path}:{number}: slots must be a positive number")
                slots = int(value)
        hosts.append((parts[0], slots))
    if not hosts:
        raise ValueError(f"{path}: no hosts")
    return hosts


def master_addr(preset: Preset) -> str:
    """Rank 0's address: ``launch.master_addr``, except that the default ``localhost`` means the
    hostfile's first host when there is a hostfile (rank 0 runs there; localhost is wrong elsewhere)."""
    launch = preset.launch
    if launch.hostfile and launch.master_addr == "localhost":
        try:
            return read_hostfile(launch.hostfile)[0][0]
        except (OSError, ValueError):  # reported by ctc-tui check
            pass
    return launch.master_addr


def bind_address(configured: str | None, environ: Mapping[str, str], advertised: str) -> str:
    """Where the supervisor listens for ranks on other hosts: ``launch.log_bind``, else
    ``$CTC_TUI_LOG_BIND``, else the address the ranks are given (not every interface: a port open on all
    of them invites every network this machine is on)."""
    return configured or environ.get("CTC_TUI_LOG_BIND") or advertised


def advertise_address(hostfile: str | Path) -> str:
    """This machine's IPv4 address as the hostfile's hosts see it: the source address of the route to
    the first host that is not this machine (a UDP ``connect`` sends nothing). Loopback when every host
    is this machine; the FQDN when no host resolves."""
    import socket

    try:
        hosts = [host for host, _ in read_hostfile(hostfile)]
    except (OSError, ValueError):
        hosts = []
    return route_address(hosts) or socket.getfqdn()


def route_address(hosts: list[str]) -> str | None:
    """The source address of the route to the first of ``hosts`` that is not this machine (a UDP
    ``connect`` sends nothing); loopback when every host is this machine; None when none resolves."""
    import ipaddress
    import socket

    loopback = None
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, 9, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            continue
        for *_, address in infos[:1]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect(address)
                    local = probe.getsockname()[0]
                except OSError:
                    continue
            if not ipaddress.ip_address(local).is_loopback:
                return local
            loopback = loopback or local
    return loopback
