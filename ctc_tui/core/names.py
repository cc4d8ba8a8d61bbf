"""Names the preset schema chooses from, each listed once.

``LAUNCHERS``: every value of ``launch.launcher``. Each name is a module ``ctc_tui.launchers.NAME``
(found by that name; see ``ctc_tui.launchers.get``); the preset's ``Launcher`` literal, its JSON schema
and the wizard's choices are derived from this tuple. Adding a launcher: a module plus its name here.
"""

from __future__ import annotations

LAUNCHERS = ("single", "torchrun", "mpi", "deepspeed")
