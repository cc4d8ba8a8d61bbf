"""``python -m ctc_tui.supervisor RUN_DIR``: the detached supervisor of one run (see ``core.serve``)."""

import sys

from ctc_tui.supervisor.core import main

sys.exit(main())
