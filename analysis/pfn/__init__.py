"""Particle Flow Networks on the events: inputs, the adjacent-bin scan (pfn_auc) and CWoLa hunting (cwola_pfn)."""
