import sys

from ctc_tui.cli import main

sys.exit(main())
