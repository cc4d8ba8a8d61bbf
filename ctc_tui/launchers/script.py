"""A launch command as text: ``command.sh`` (exactly what was launched, quoted for a POSIX shell) and
one line per program, switch or option with its value (show-command, the wizard's review)."""

from __future__ import annotations

import shlex

from ctc_tui.launchers.registry import all_launchers

#: Options of ctc-tui's own commands that take no value (each launcher lists its own in ``switches``).
RUNNER_SWITCHES = ("--resume",)


def switches() -> set[str]:
    """Every option that takes no value: the runner's and every launcher's (with gaudi_spawn's)."""
    names = set(RUNNER_SWITCHES)
    for launcher in all_launchers():
        names.update(launcher.switches, launcher.spawn_flags())
    return names


def command_script(command: list[str], env: dict[str, str]) -> str:
    """``command.sh``: exactly what was launched, every argument quoted for a POSIX shell."""
    lines = ["#!/bin/sh", "# Written by ctc-tui: the exact command of this run.", "set -e"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    lines.append("exec " + " \\\n    ".join(argument_lines(command)))
    return "\n".join(lines) + "\n"


def argument_lines(command: list[str]) -> list[str]:
    """One line per program, switch, or option with its value (easy to read, still exact)."""
    flags = switches()
    out: list[str] = []
    i = 0
    while i < len(command):
        part = command[i]
        nxt = command[i + 1] if i + 1 < len(command) else None
        takes_value = (
            part.startswith("-")
            and part not in flags
            and nxt is not None
            and not (nxt.startswith("-") and len(nxt) > 1 and not _is_number(nxt))
        )
        if takes_value:
            out.append(f"{shlex.quote(part)} {shlex.quote(nxt)}")  # type: ignore[arg-type]
            i += 2
        else:
            out.append(shlex.quote(part))
            i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
