"""The shared contract of ctc-tui's two halves: what the login node and every rank agree on.

The preset schema and its loading (``preset``, ``presetfile``, ``problems``, ``yamlio``, ``fielddocs``),
the shipped presets (``shipped``), events and run states (``events``), run-directory file names
(``rundir``), transcript normalisation (``textnorm``), the reference script's flags
(``reference_flags``), the model architectures (``architectures``) and the names the schema chooses
from, each listed once (``names``: ``LAUNCHERS``).

Everything here imports only the standard library, PyYAML, pydantic and other ``ctc_tui.core``
modules: never torch, textual, or another ``ctc_tui`` subpackage. Import the modules themselves; this
``__init__`` stays empty so that the wizard's first screen is drawn before pydantic is loaded.
"""
