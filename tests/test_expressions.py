"""Safe expressions: allowed grammar evaluates like Python's math; everything else is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.core.errors import ConfigError
from analysis.core.expressions import ExpressionError, parse
from analysis.toys.definitions import parse_entries

SENTINEL = Path("/tmp/dijetscan_expression_sentinel")

HOSTILE = [
    f"__import__('os').system('touch {SENTINEL}')",
    f"open('{SENTINEL}', 'w')",
    "().__class__.__bases__[0].__subclasses__()",
    "n.__class__",
    "n.real",
    "[n for n in range(3)]",
    "n[0]",
    "lambda: 1",
    "exec('1')",
    "eval('1')",
    "globals()",
    "x",
    "np.pi",
    "n if n else 1",
    "n < 3",
    "n and 1",
    "n | 1",
    "n // 2",
    "n % 2",
    "'abc'",
    "b'abc'",
    "True",
    "None",
    "sqrt(x=n)",
    "sqrt",
    "f'{n}'",
    "(n := 3)",
    "{1: n}",
    "(1, 2)",
    "9 ** 9 ** 9",
    "1 +",
    "",
    "n" * 300,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_expressions_are_rejected_and_nothing_runs(text: str) -> None:
    SENTINEL.unlink(missing_ok=True)
    with pytest.raises(ExpressionError):
        parse(text)(np.arange(3.0))
    assert not SENTINEL.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25*n + 25", lambda n: 25 * n + 25),
        ("-n ** 2 / 4 + (3 - n)", lambda n: -(n**2) / 4 + (3 - n)),
        ("sqrt(n + 1) * exp(-n / 10)", lambda n: math.sqrt(n + 1) * math.exp(-n / 10)),
        ("2 * pi * cos(n) + e", lambda n: 2 * math.pi * math.cos(n) + math.e),
        ("max(n, 3) + min(n, 1) + abs(-n) + floor(n / 3) + log10(n + 1)",
         lambda n: max(n, 3) + min(n, 1) + abs(-n) + math.floor(n / 3) + math.log10(n + 1)),
        (12.5, lambda n: 12.5),
        (7, lambda n: 7.0),
    ],
)  # fmt: skip
def test_allowed_expressions_match_python_math(text: str | float, expected) -> None:
    n = np.arange(6.0)
    np.testing.assert_allclose(parse(text)(n), [expected(float(k)) for k in n], rtol=1e-12)


def test_non_finite_value_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="no finite value"):
        parse("1 / (n - 2)")(np.arange(4.0))


def test_hostile_expression_in_definitions_names_entry_and_field() -> None:
    data = [
        {"id": 0, "center": "100", "height": "10", "width": "5"},
        {"id": 7, "center": "__import__('os').system('ls')", "height": 10, "width": 5},
    ]
    with pytest.raises(ConfigError, match=r"signals.yaml: entry id=7 field 'center': unsafe or invalid expression"):
        parse_entries("signals", data, "signals.yaml")
