"""``python -m analysis ARGS`` is ``python run_analysis.py ARGS`` (the workbench runs its jobs so)."""

import sys

from analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
