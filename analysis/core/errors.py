"""Exceptions that map onto the command line's exit status.

``ConfigError`` (exit 2): bad arguments or a bad config; ``InputError`` (exit 1): a failure at
run time caused by an input (a file, a branch, a value). Both carry one line naming the culprit.
"""

from __future__ import annotations


class DijetscanError(Exception):
    """Base class: an error with a one-line, user-facing message."""

    exit_code = 1


class ConfigError(DijetscanError):
    """Bad arguments or a malformed/invalid configuration (exit status 2)."""

    exit_code = 2


class InputError(DijetscanError):
    """A run-time failure caused by an input file or value (exit status 1)."""

    exit_code = 1
