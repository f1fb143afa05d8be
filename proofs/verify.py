"""Run the registered claims and render the report (the library side of ``lazysi verify``).

``verify(ids=None, digits=30, quick=False)`` runs every registered claim (or the given ids) --
its symbolic proof and its numeric confirmation against an mpmath reference at ``digits``
digits -- and returns one :class:`~lazysi.proofs.registry.ClaimResult` per claim. The
renderers turn the results into a plain-text table, JSON or Markdown.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence

from .mpcheck import flush_cache
from .registry import REGISTRY, Claim, ClaimResult, Context, claims, run_claim

__all__ = ["UnknownClaimError", "verify", "run_claims", "legend", "GROUPS", "select_claims", "render_table", "render_json", "render_markdown", "summary_line"]


class UnknownClaimError(KeyError):
    """A requested claim id is not registered (the message lists the known ids)."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


def select_claims(ids: Iterable[str] | None = None) -> list[Claim]:
    """The registered claims in report order, or exactly ``ids`` (in report order, unknown ids raise)."""
    everything = claims()
    if ids is None:
        return everything
    wanted = list(dict.fromkeys(ids))
    unknown = [i for i in wanted if i not in REGISTRY]
    if unknown:
        raise UnknownClaimError(f"unknown claim id(s) {', '.join(unknown)}; known: {', '.join(c.id for c in everything)}")
    return [c for c in everything if c.id in wanted]


def verify(
    ids: Sequence[str] | None = None,
    digits: int = 30,
    quick: bool = False,
    progress: Callable[[int, int, ClaimResult], None] | None = None,
) -> list[ClaimResult]:
    """Run the selected claims at ``digits`` digits (``quick``: the reduced sweep each claim
    defines). ``progress(i, n, result)`` is called after each claim."""
    if not isinstance(digits, int) or digits < 15:
        raise ValueError(f"digits must be an integer >= 15 (float64 references need more than 16), got {digits!r}")
    selected = select_claims(ids)
    return run_claims(selected, digits=digits, quick=quick, progress=progress)


def run_claims(
    selected: Sequence[Claim],
    digits: int = 30,
    quick: bool = False,
    progress: Callable[[int, int, ClaimResult], None] | None = None,
) -> list[ClaimResult]:
    """Run the given claims (registered or not, e.g. :mod:`lazysi.proofs.instances`) in order."""
    if not isinstance(digits, int) or digits < 15:
        raise ValueError(f"digits must be an integer >= 15 (float64 references need more than 16), got {digits!r}")
    ctx = Context(digits=digits, quick=quick)
    if not quick and len(selected) > 1 and any(c.id == "K0" for c in selected):
        from .claims_kernels import prefetch_regeneration

        prefetch_regeneration()  # K0's slow half overlaps with the other claims (2+ cores)
    results = []
    for i, claim in enumerate(selected, start=1):
        result = run_claim(claim, ctx)
        results.append(result)
        if progress is not None:
            progress(i, len(selected), result)
    flush_cache()
    return results


def stderr_progress(i: int, n: int, r: ClaimResult) -> None:
    """One line per claim on stderr."""
    mark = "ok  " if r.passed else "FAIL"
    print(f"[{i:>2}/{n}] {mark} {r.id:<5} {r.seconds:6.2f}s", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- rendering
def _err(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf"
    return f"{x:.1e}"


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary_line(results: Sequence[ClaimResult]) -> str:
    failed = [r.id for r in results if not r.passed]
    total = sum(r.seconds for r in results)
    if failed:
        return f"{len(results) - len(failed)}/{_plural(len(results), 'claim')} passed in {total:.1f}s; FAILED: {', '.join(failed)}"
    if len(results) == 1:
        return f"the 1 claim passed in {total:.1f}s"
    return f"all {_plural(len(results), 'claim')} passed in {total:.1f}s"


#: what the claim-id prefixes mean (the table's legend shows those present)
GROUPS = (
    ("C", "claims C1-C16 of docs/MATH.md (the theory)"),
    ("K", "generated torch kernels equal their sympy definitions (K0: committed modules = generator)"),
    ("P", "peer libraries' formulas (flow_matching, diffusers, SiT) agree with ours"),
    ("EP", "claims registered by installed packages (entry-point group lazysi.claims)"),
)


def _group(cid: str) -> str:
    """The legend group of a claim id: ``C``/``K``/``P`` + digits, ``EP:name``, ``SCOPE:Cn``, or other."""
    import re

    if cid.startswith("EP:"):
        return "EP"
    if ":" in cid:
        return cid.split(":")[0] + ":"
    m = re.match(r"^([CKP])\d+[a-z]?$", cid)
    return m.group(1) if m else "other"


def legend(results: Sequence[ClaimResult]) -> list[str]:
    """One line per claim-id group present in ``results``."""
    present = list(dict.fromkeys(_group(r.id) for r in results))
    lines = [f"  {p:<4} {text}" for p, text in GROUPS if p in present]
    lines += [f"  {g:<4} generic claims instantiated for {g[:-1]} (lazysi verify --schedule / --convert)"
              for g in present if g.endswith(":")]
    if "other" in present:
        others = [r.id for r in results if _group(r.id) == "other"]
        lines.append(f"  other: user claims ({', '.join(others[:6])}{', ...' if len(others) > 6 else ''})")
    import textwrap

    wrapped = [w for line in lines for w in textwrap.wrap(line, TABLE_WIDTH, subsequent_indent=" " * 7)]
    return ["groups:"] + wrapped if wrapped else []


TABLE_WIDTH = 100


def render_table(results: Sequence[ClaimResult], width: int | None = None, *, wide: bool = False) -> str:
    """Plain-text table: id, statement, symbolic status, worst numeric error (and tolerance),
    digits, time, verdict; then a legend of the id groups and the 'how' of each failure.

    Fits :data:`TABLE_WIDTH` (100) columns by wrapping the statements (``width`` sets the
    statement column instead); ``wide``: one line per claim, statements in full."""
    import textwrap

    iw = max([5] + [len(r.id) for r in results])
    fixed = iw + 1 + 1 + 12 + 1 + 9 + 1 + 7 + 1 + 3 + 1 + 6 + 2 + 6
    if wide:
        sw = max([9] + [len(" ".join(r.statement.split())) for r in results])
    else:
        sw = width if width is not None else max(20, TABLE_WIDTH - fixed)
    head = f"{'id':<{iw}} {'statement':<{sw}} {'symbolic':<12} {'max error':>9} {'tol':>7} {'dig':>3} {'time':>6}  result"
    lines = [head, "-" * len(head)]
    for r in results:
        text = " ".join(r.statement.split())
        parts = [text] if wide else (textwrap.wrap(text, sw) or [""])
        lines.append(
            f"{r.id:<{iw}} {parts[0]:<{sw}} {r.symbolic:<12} {_err(r.numeric_max_error):>9} "
            f"{_err(r.tolerance):>7} {r.digits:>3} {r.seconds:5.1f}s  {'pass' if r.passed else 'FAIL'}"
        )
        lines += [f"{'':<{iw}} {p}" for p in parts[1:]]
    lines += [""] + legend(results)
    failures = [r for r in results if not r.passed]
    if failures:
        lines.append("")
        for r in failures:
            lines.append(f"{r.id} failed:")
            if r.symbolic == "failed":
                lines.append(f"  symbolic: {r.symbolic_detail}")
            if not (math.isfinite(r.numeric_max_error) and r.numeric_max_error <= r.tolerance):
                lines.append(f"  numeric: error {_err(r.numeric_max_error)} > tolerance {_err(r.tolerance)}: {r.numeric_detail}")
    lines.append("")
    lines.append(summary_line(results))
    return "\n".join(lines)


def _jsonable(x: float):
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf") if not math.isnan(x) else "nan"


def results_as_dicts(results: Sequence[ClaimResult]) -> list[dict]:
    """Plain dicts (non-finite numbers as the strings "inf"/"nan", so the JSON stays standard)."""
    out = []
    for r in results:
        d = r.as_dict()
        d["numeric_max_error"] = _jsonable(d["numeric_max_error"])
        d["tolerance"] = _jsonable(d["tolerance"])
        out.append(d)
    return out


def render_json(results: Sequence[ClaimResult]) -> str:
    return json.dumps(results_as_dicts(results), indent=2)


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(results: Sequence[ClaimResult], options: dict | None = None) -> str:
    """A Markdown report: summary, the table, and the details of every claim."""
    lines = ["# lazysi verify: claims report", "", f"**{summary_line(results)}**", ""]
    if options:
        lines += ["Options: " + ", ".join(f"`{k}={v}`" for k, v in options.items()), ""]
    lines += [
        "| id | statement | symbolic | max error | tolerance | digits | time (s) | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.id} | {_md(r.statement)} | {r.symbolic} | {_err(r.numeric_max_error)} | {_err(r.tolerance)} | "
            f"{r.digits} | {r.seconds:.2f} | {'pass' if r.passed else '**FAIL**'} |"
        )
    lines += ["", "## Details", ""]
    for r in results:
        lines.append(f"- **{r.id}** ({'pass' if r.passed else 'FAIL'}): symbolic {r.symbolic}: {_md(r.symbolic_detail) or '-'}; "
                     f"numeric: {_md(r.numeric_detail) or '-'}")
    return "\n".join(lines) + "\n"
