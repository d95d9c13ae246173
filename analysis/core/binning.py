"""Bin centres of mass binnings: the one place they are computed from edges."""

from __future__ import annotations

import numpy as np


def bin_centres(edges: np.ndarray) -> np.ndarray:
    """Centres of the bins between consecutive ``edges`` (as a ``hist`` axis' ``centers``)."""
    edges = np.asarray(edges, dtype=float)
    return 0.5 * (edges[1:] + edges[:-1])
