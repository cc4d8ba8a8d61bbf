"""``ctc-tui devices``: the Gaudi cards, GPUs and CPU of this machine, as a table or JSON."""

from __future__ import annotations

import argparse
import json


def cmd_devices(args: argparse.Namespace) -> int:
    from ctc_tui import devices  # probing the cards loads only for this command

    found = devices.detect()
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        from rich.console import Console  # the table only when it is printed

        Console().print(devices.render_table(found))
    return 0


def _devices_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"devices": _devices_arguments}
