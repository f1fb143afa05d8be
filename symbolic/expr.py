"""Safe parsing of user expressions into sympy trees.

A user string such as ``"sigma*sqrt(t*(1-t))"`` is parsed with Python's :mod:`ast` and walked
against a whitelist; the sympy tree is built node by node. Nothing is ever passed to ``eval``,
``exec``, ``sympify`` or ``parse_expr``. Anything outside the whitelist (attribute access, calls
to other names, lambdas, subscripts, comprehensions, keyword arguments, huge exponents or
literals, too deep or too long input) is refused with an :class:`ExpressionError` naming the
offending construct.
"""
from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping

import sympy as sp

__all__ = [
    "ExpressionError",
    "ALLOWED_FUNCTIONS",
    "ALLOWED_CONSTANTS",
    "MAX_LENGTH",
    "parse_expression",
    "time_symbol",
    "param_symbol",
]

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 100
MAX_EXPONENT = 64
MAX_LITERAL = 10**12
MAX_DIGITS = 40
MAX_EXP_ARGUMENT = 1000  # exp/sinh/cosh of a constant beyond this overflows every float


class ExpressionError(ValueError):
    """A user expression was refused; the message names the reason."""


# Real symbols: t lives on [0, 1]; parameters are positive unless declared otherwise.
_T = sp.Symbol("t", real=True, nonnegative=True)
_S = sp.Symbol("s", real=True, nonnegative=True)


def time_symbol(name: str = "t") -> sp.Symbol:
    """The canonical time symbol (``t`` for a schedule, ``s`` for a conversion target)."""
    if name == "t":
        return _T
    if name == "s":
        return _S
    raise ExpressionError(f"unknown time variable {name!r}; use 't' or 's'")


def param_symbol(name: str, *, positive: bool = True) -> sp.Symbol:
    """The canonical symbol of a named parameter (positive by default, e.g. sigma, nu)."""
    if positive:
        return sp.Symbol(name, positive=True)
    return sp.Symbol(name, real=True)


ALLOWED_FUNCTIONS: dict[str, sp.Function] = {
    "sqrt": sp.sqrt,
    "exp": sp.exp,
    "log": sp.log,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "atan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
}
ALLOWED_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: None,  # handled separately (size guard)
}


def _short(value: object, limit: int = 40) -> str:
    """``repr`` of a user-supplied piece, shortened so that an error message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_MAX_BITS = int(MAX_DIGITS * 3.33) + 1


def _check_size(value: sp.Expr, where: str) -> sp.Expr:
    """Refuse exact rationals with more than about MAX_DIGITS digits (bit length, no str())."""
    if value.is_Number and value.is_Rational:
        p, q = value.as_numer_denom()
        if abs(int(p)).bit_length() > _MAX_BITS or abs(int(q)).bit_length() > _MAX_BITS:
            raise ExpressionError(f"{where}: numeric value too large (more than {MAX_DIGITS} digits)")
    return value


_GROWING = ("exp", "sinh", "cosh")


def _check_result(expr: sp.Expr) -> sp.Expr:
    """Refuse undefined, infinite or complex results (division by zero, log(0), sqrt(-1), ...)."""
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ExpressionError(f"expression is undefined or infinite: {sp.sstr(expr)[:80]} (division by zero, log(0), tan(pi/2)?)")
    if expr.has(sp.I):
        raise ExpressionError(f"expression is complex: {sp.sstr(expr)[:80]} (square root or log of a negative value?)")
    return expr


def parse_expression(
    text: str,
    params: Mapping[str, sp.Symbol] | None = None,
    *,
    variable: str = "t",
) -> sp.Expr:
    """Parse ``text`` into a sympy expression in the time variable and declared parameters.

    Args:
        text: the expression, Python syntax (``**`` for powers).
        params: allowed parameter names mapped to their sympy symbols.
        variable: the name of the time variable (``"t"`` or ``"s"``).

    Raises:
        ExpressionError: naming the first construct outside the whitelist.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} > {MAX_LENGTH} characters)")
    if not text.strip():
        raise ExpressionError("empty expression")
    if not text.isascii():
        raise ExpressionError("expression contains non-ASCII characters")
    if "\x00" in text:
        raise ExpressionError("expression contains a NUL character")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "1if": the error below is enough
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression nested too deeply") from None

    names: dict[str, sp.Expr] = {variable: time_symbol(variable)}
    for name, sym in (params or {}).items():
        if name in ALLOWED_FUNCTIONS or name in ALLOWED_CONSTANTS or name == variable:
            raise ExpressionError(f"parameter name {_short(name)} clashes with a reserved name")
        names[name] = sym
    names.update(ALLOWED_CONSTANTS)

    count = 0

    def walk(node: ast.AST, depth: int) -> sp.Expr:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression too large (more than {MAX_NODES} nodes)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ExpressionError(f"literal {_short(value)} is not a real number")
            if abs(value) > MAX_LITERAL:
                raise ExpressionError(f"literal {_short(value)} too large (limit {MAX_LITERAL:g})")
            if isinstance(value, int):
                return sp.Integer(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ExpressionError("non-finite literal")
            # Exact decimal: '0.7' -> 7/10, so symbolic work stays exact.
            return sp.Rational(repr(value))
        if isinstance(node, ast.Name):
            if node.id not in names:
                allowed = sorted(set(names) | set(ALLOWED_FUNCTIONS))
                raise ExpressionError(f"unknown name {_short(node.id)}; allowed: {', '.join(allowed)}")
            return names[node.id]
        if isinstance(node, ast.UnaryOp):
            operand = walk(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise ExpressionError(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
            left = walk(node.left, depth + 1)
            right = walk(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                for side in (left, right):  # an undefined or complex constant (e.g. (t - t)**(-1)) named as such
                    if side.is_number:
                        _check_result(side)
                if not right.is_number:
                    return left**right
                if right.is_real is False:
                    raise ExpressionError("complex exponent")
                if abs(float(right)) > MAX_EXPONENT:
                    raise ExpressionError(f"exponent {sp.sstr(right)[:40]} too large (|exponent| <= {MAX_EXPONENT})")
                if left.is_number and left != 0 and abs(float(sp.N(left, 15))) > MAX_LITERAL:
                    raise ExpressionError("power of a too large base")
                return _check_size(left**right, "power")
            if isinstance(node.op, ast.Div) and right == 0:
                raise ExpressionError("division by the literal zero")
            return _check_size(_BINOPS[type(node.op)](left, right), "arithmetic")
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                raise ExpressionError(
                    f"attribute access (.{_short(node.func.attr)[1:-1][:30]}) not allowed; "
                    "only calls of plain function names are allowed"
                )
            if not isinstance(node.func, ast.Name):
                raise ExpressionError("only calls of plain function names are allowed (no attributes)")
            fname = node.func.id
            if fname not in ALLOWED_FUNCTIONS:
                raise ExpressionError(
                    f"function {_short(fname)} is not allowed; allowed: {', '.join(sorted(ALLOWED_FUNCTIONS))}"
                )
            if node.keywords:
                raise ExpressionError(f"{fname}() takes no keyword arguments")
            if len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
                raise ExpressionError(f"{fname}() takes exactly one argument")
            arg = walk(node.args[0], depth + 1)
            if fname in _GROWING and arg.is_number and abs(float(sp.re(arg))) > MAX_EXP_ARGUMENT:
                raise ExpressionError(f"{fname}() of a constant beyond {MAX_EXP_ARGUMENT} in magnitude")
            return ALLOWED_FUNCTIONS[fname](arg)
        kind = type(node).__name__
        hints = {
            "Attribute": "attribute access",
            "Subscript": "subscripts",
            "Lambda": "lambdas",
            "ListComp": "comprehensions",
            "GeneratorExp": "comprehensions",
            "SetComp": "comprehensions",
            "DictComp": "comprehensions",
            "Compare": "comparisons",
            "BoolOp": "boolean operators",
            "IfExp": "conditional expressions",
            "NamedExpr": "assignment expressions",
            "JoinedStr": "f-strings",
        }
        raise ExpressionError(f"{hints.get(kind, kind)} not allowed in expressions")

    try:
        return _check_result(walk(tree, 0))
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression nested too deeply") from None
    except (ArithmeticError, TypeError, ValueError, NotImplementedError, MemoryError) as exc:
        # sympy refused to build or evaluate a constant (e.g. an overflow): a clear refusal.
        raise ExpressionError(f"expression cannot be built: {type(exc).__name__}: {str(exc)[:120]}") from None
