"""Safe arithmetic expressions of the period index ``n`` (signal centres, heights, widths).

Expressions are parsed with :mod:`ast` and evaluated by walking the tree; nothing is ever
executed. Allowed: numbers, the variable ``n``, the constants ``pi`` and ``e``, ``+ - * / **``,
unary signs, parentheses and calls of a fixed set of math functions with positional arguments
(one argument; ``min`` and ``max`` two or more, folded pairwise, so no argument can ever land in
NumPy's ``out`` slot). Any other name, attribute, subscript, keyword, comparison, string or call
is rejected, and so is a number that is not finite as a float (``1e999``, ``10**400`` written
out). The value of ``n`` is read-only during an evaluation: nothing can change it for the next
expression. :func:`check_values` evaluates an expression over every period index and checks
the values are finite and within bounds, so definitions fail at load, not at plot time.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 200
MAX_EXPONENT = 64.0
MAX_ARGUMENTS = 16  # of min / max
MAX_VALUE = 1e12  # bound on |value| of a signal centre, height or width


def _fold(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``function`` (np.minimum / np.maximum) folded over any number of arguments, pairwise."""
    return lambda *args: functools.reduce(lambda a, b: function(a, b), args)


UNARY_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "abs": np.abs,
    "floor": np.floor,
    "ceil": np.ceil,
}
FOLDED_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {"min": _fold(np.minimum), "max": _fold(np.maximum)}
FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {**UNARY_FUNCTIONS, **FOLDED_FUNCTIONS}
CONSTANTS = {"pi": float(np.pi), "e": float(np.e)}
VARIABLE = "n"

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class ExpressionError(ValueError):
    """An expression that is malformed or uses something outside the allowed grammar."""


@dataclass(frozen=True)
class Expression:
    """A validated expression; call it with ``n`` (a number or an array) to evaluate."""

    text: str
    tree: ast.Expression

    def __call__(self, n: float | np.ndarray) -> np.ndarray:
        index = np.array(n, dtype=float)  # a private, read-only copy: no function can write into n
        index.setflags(write=False)
        with np.errstate(all="raise"):
            try:
                value = _evaluate(self.tree.body, index)
            except FloatingPointError as exc:
                raise ExpressionError(f"'{self.text}' has no finite value ({exc})") from None
            except ExpressionError as exc:
                raise ExpressionError(f"{exc} in '{self.text}'") from None
        value = np.broadcast_to(np.asarray(value, dtype=float), np.shape(n)).copy()
        if not np.all(np.isfinite(value)):
            raise ExpressionError(f"'{self.text}' has no finite value")
        return value


def check_values(
    expression: Expression, periods: int, *, positive: bool = False, non_negative: bool = False
) -> np.ndarray:
    """Evaluate ``expression`` at ``n = 0..periods-1``; every value must be finite, within
    ``±MAX_VALUE`` and (``positive`` / ``non_negative``) of the right sign. Returns the values;
    raises :class:`ExpressionError` naming the first offending ``n``."""
    n = np.arange(periods, dtype=float)
    values = expression(n)
    checks = [(np.abs(values) <= MAX_VALUE, f"outside ±{MAX_VALUE:g}")]
    if positive:
        checks.append((values > 0, "not positive"))
    if non_negative:
        checks.append((values >= 0, "negative"))
    for ok, what in checks:
        if not np.all(ok):
            first = int(np.argmin(ok))
            raise ExpressionError(f"'{expression.text}' is {what} at n = {first} (value {values[first]:g})")
    return values


def parse(text: str | int | float) -> Expression:
    """Parse and validate an expression; raise :class:`ExpressionError` naming what is not allowed."""
    if isinstance(text, bool):
        raise ExpressionError("a boolean is not a number")
    if isinstance(text, int | float):
        text = repr(text)
    if not isinstance(text, str):
        raise ExpressionError(f"expected a number or an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"'{text}' is not a valid expression ({exc.msg})") from None
    for node in ast.walk(tree):
        _check(node, text)
    return Expression(text=text, tree=tree)


def _check(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Expression | ast.expr_context | ast.operator | ast.unaryop):
        return  # operators are checked at their BinOp/UnaryOp
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in '{text}'")
        return
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in '{text}'")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"constant {node.value!r} is not a number in '{text}'")
        try:
            finite = math.isfinite(float(node.value))
        except OverflowError:
            finite = False
        if not finite:
            raise ExpressionError(f"number {_short(node.value)} is not finite in '{text}'")
        return
    if isinstance(node, ast.Name):
        if node.id != VARIABLE and node.id not in CONSTANTS and node.id not in FUNCTIONS:
            raise ExpressionError(f"name '{node.id}' is not allowed in '{text}' (only n, pi, e)")
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(
                f"call is not allowed in '{text}' (functions: {', '.join(sorted(FUNCTIONS))})"
            )
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed in '{text}'")
        name = node.func.id
        if name in UNARY_FUNCTIONS and len(node.args) != 1:
            raise ExpressionError(f"{name}() takes exactly one argument in '{text}'")
        if name in FOLDED_FUNCTIONS and not 2 <= len(node.args) <= MAX_ARGUMENTS:
            raise ExpressionError(f"{name}() takes 2 to {MAX_ARGUMENTS} arguments in '{text}'")
        return
    raise ExpressionError(f"{type(node).__name__} is not allowed in '{text}'")


def _short(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"


def _evaluate(node: ast.AST, n: np.ndarray) -> np.ndarray | float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id == VARIABLE:
            return n
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ExpressionError(f"function '{node.id}' used as a value")
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, n))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, n), _evaluate(node.right, n)
        if isinstance(node.op, ast.Pow) and np.any(np.abs(right) > MAX_EXPONENT):
            raise ExpressionError(f"exponent larger than {MAX_EXPONENT:g}")
        return _BINARY[type(node.op)](np.asarray(left, dtype=float), right)
    if isinstance(node, ast.Call):
        args = [_evaluate(arg, n) for arg in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)  # type: ignore[union-attr]
        except TypeError as exc:
            raise ExpressionError(f"bad arguments to {node.func.id}(): {exc}") from None  # type: ignore[union-attr]
    raise ExpressionError(f"{type(node).__name__} is not allowed")
