"""Host names from presets and hostfiles, checked before they reach ssh, pdsh or a remote shell.

A host is an RFC 1123 name (letters, digits and ``-`` in dot-separated labels), an IPv4 address or a
bracket-less IPv6 address. Nothing else passes: a leading ``-`` would become an ssh option, and ``$``,
quotes or spaces would be read by the remote shell DeepSpeed starts ranks with.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or address (None when it is one)."""
    if not host:
        return "an empty host name"
    if host.startswith("-"):
        return f"host {host!r} starts with '-' (ssh would read it as an option)"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"host {host!r} is not an IPv6 address (write it without brackets or port)"
        return None
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        return (
            f"host {host!r} is not a host name or address: use letters, digits, '-' and '.' "
            "(RFC 1123), an IPv4 or an IPv6 address"
        )
    return None


def check_host(host: str) -> str:
    """``host`` itself, or ValueError saying why it is not a host name."""
    problem = host_problem(host)
    if problem:
        raise ValueError(problem)
    return host
