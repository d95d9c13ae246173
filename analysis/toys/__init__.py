"""Toy mass spectra: the YAML definitions of signals, backgrounds and wavelets, their spectra and plots."""
