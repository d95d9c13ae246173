#!/usr/bin/env python
"""dijetscan command line: ``python run_analysis.py [COMMAND] [options]`` (see ``--help``)."""

import sys

from analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
