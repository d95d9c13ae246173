"""Subcommands of ``run_analysis.py``: each module parses its arguments and calls the workflow."""
