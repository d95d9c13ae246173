"""The shared core: the typed config, errors, atomic results, provenance, safe expressions, plot style, sessions."""
