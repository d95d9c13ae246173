"""The sensitivity protocol: every method measured on the same events, local and global Z.

* :mod:`~analysis.sensitivity.realizations`: the shared pseudo-datasets (background
  realisations of the analysis luminosity, nested signal draws);
* :mod:`~analysis.sensitivity.tails`: p-values from null toys, past the toys with a fitted
  exponential tail, or bounds;
* :mod:`~analysis.sensitivity.summary`: per-realisation p-values -> medians, bands, crossings
  and the null calibration (KS) of a method's entry;
* :mod:`~analysis.sensitivity.model`: ``sensitivity.json`` (format 2), its one reader and writer.
"""

from scipy import stats

P_3SIGMA = float(stats.norm.sf(3.0))  # one-sided: 1.35e-3
P_5SIGMA = float(stats.norm.sf(5.0))  # one-sided: 2.87e-7
