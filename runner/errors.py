"""The runner's user errors: input that cannot work as given, reported as one line and exit code 2.

``DataError`` (a source, split or clip), ``ModelError`` (a model, tokenizer or config), ``RunError``
(the run as configured: its output dir, its padding) and ``SaveFailed`` (a save that could not be
written: a full disk; ctc_tui.runner.saving) each carry a message that names the fix.
"""

from __future__ import annotations

from ctc_tui.core.sources import DataError
from ctc_tui.runner.model import ModelError
from ctc_tui.runner.saving import SaveFailed


class RunError(Exception):
    """A run that cannot start as configured; the message names the fix."""


#: What ``python -m ctc_tui.runner`` reports as a bad preset, data or model, or a failed save (exit 2, no
#: traceback).
USER_ERRORS = (DataError, ModelError, RunError, SaveFailed)
