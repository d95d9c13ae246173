"""``sensitivity.json``: one entry per method, merged in place by every stage that measures one.

Format (design, stage 4): ``{"methods": [{"method": .., "points": [{"n_signal": .., "z": ..}],
"n_signal_3sigma": .., "n_signal_5sigma": ..}]}``; an entry may carry more keys.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

from scipy import stats

from analysis.atomic import write_json
from analysis.errors import InputError

P_3SIGMA = float(stats.norm.sf(3.0))  # one-sided: 1.35e-3
P_5SIGMA = float(stats.norm.sf(5.0))  # one-sided: 2.87e-7


def merge_method(path: str | Path, entry: dict[str, Any]) -> None:
    """Put ``entry`` into ``path`` (replacing an entry of the same method), atomically."""
    path = Path(path)
    data: dict[str, Any] = {"methods": []}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable sensitivity.json ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("methods", []), list):
            raise InputError(f"{path}: not a sensitivity.json (needs a 'methods' list)")
    methods = [m for m in data.get("methods", []) if m.get("method") != entry["method"]]
    write_json(path, {**data, "methods": [*methods, entry]})


def size_at_p(sizes: list[float], p_values: list[float], threshold: float) -> float | None:
    """First signal size where p reaches ``threshold``, interpolated linearly in ln p between the
    grid points (sizes ascending); None if never reached."""
    points = sorted(zip(sizes, p_values, strict=True))
    for i, (size, p) in enumerate(points):
        if p <= threshold:
            if i == 0:
                return float(size)
            s0, p0 = points[i - 1]
            frac = (math.log(threshold) - math.log(p0)) / (math.log(p) - math.log(p0))
            return float(s0 + frac * (size - s0))
    return None


def crossing(points: list[dict[str, float]], threshold: float) -> float | None:
    """First N where Z reaches ``threshold`` (linear interpolation); None if never."""
    for lo, hi in itertools.pairwise(points):
        if lo["z"] >= threshold:
            return float(lo["n_signal"])
        if hi["z"] >= threshold:
            frac = (threshold - lo["z"]) / (hi["z"] - lo["z"])
            return float(lo["n_signal"] + frac * (hi["n_signal"] - lo["n_signal"]))
    return None
