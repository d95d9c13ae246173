"""Safe arithmetic expressions of the period index ``n`` (signal centres, heights, widths).

Expressions are parsed with :mod:`ast` and evaluated by walking the tree; nothing is ever
executed. Allowed: numbers, the variable ``n``, the constants ``pi`` and ``e``, ``+ - * / **``,
unary signs, parentheses and calls of a fixed set of math functions with positional arguments.
Any other name, attribute, subscript, keyword, comparison, string or call is rejected.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_LENGTH = 200
MAX_EXPONENT = 64.0

FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
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
    "min": np.minimum,
    "max": np.maximum,
}
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
        with np.errstate(all="raise"):
            try:
                value = _evaluate(self.tree.body, np.asarray(n, dtype=float))
            except FloatingPointError as exc:
                raise ExpressionError(f"'{self.text}' has no finite value ({exc})") from None
        return np.broadcast_to(np.asarray(value, dtype=float), np.shape(n)).copy()


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
        return
    raise ExpressionError(f"{type(node).__name__} is not allowed in '{text}'")


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
