"""dijetscan workflow: configs, generation, injection, toys, CWT/p-values, scans, statistics, plots."""

__version__ = "0.1.0"
