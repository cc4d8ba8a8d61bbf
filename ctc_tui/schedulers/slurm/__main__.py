"""The submitter of a ``ctc-tui run --slurm``: ``python -m ctc_tui.schedulers.slurm submit --job-id-file
FILE -- sbatch ...`` (see ``submit.main``)."""

import sys

from ctc_tui.schedulers.slurm.submit import main

sys.exit(main())
