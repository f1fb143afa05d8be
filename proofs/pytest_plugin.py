"""pytest plugin: every lazysi claim becomes a test item (registered as the ``pytest11`` entry
point ``lazysi``, so it is active wherever lazysi is installed).

Usage in a user's repository::

    pytest --lazysi-claims claims/            # a claim module or a folder of them (repeatable)
    pytest --lazysi-claims claims/ --lazysi-builtin --lazysi-quick --lazysi-digits 40

or, with no command-line flags, one line in ``conftest.py``::

    from lazysi.proofs.pytest_plugin import collect_claims; collect_claims("claims/")

Each claim registered by those modules (and with ``--lazysi-builtin`` every built-in claim and
every entry-point claim) is one item ``lazysi::<id>``; it fails with the claim's symbolic detail
and numeric error, exactly as ``lazysi verify`` reports them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["collect_claims", "ClaimItem"]

_CONFTEST_PATHS: list[str] = []


def collect_claims(path: str) -> None:
    """Conftest one-liner: collect the claims of ``path`` (a file or a folder) as test items."""
    _CONFTEST_PATHS.append(str(path))


def pytest_addoption(parser) -> None:
    group = parser.getgroup("lazysi", "lazysi claims as tests")
    group.addoption("--lazysi-claims", action="append", default=[], metavar="PATH",
                    help="collect the claims registered by this claim module or folder (repeatable)")
    group.addoption("--lazysi-builtin", action="store_true", help="also collect lazysi's built-in and entry-point claims")
    group.addoption("--lazysi-digits", type=int, default=30, help="mpmath digits of the numeric halves (default 30)")
    group.addoption("--lazysi-quick", action="store_true", help="the reduced sweep of each claim")


class ClaimItem(pytest.Item):
    """One claim run through :func:`lazysi.proofs.registry.run_claim`."""

    def __init__(self, *, claim, **kwargs):
        super().__init__(**kwargs)
        self.claim = claim

    def runtest(self) -> None:
        from lazysi.proofs.registry import Context, run_claim

        opt = self.config.getoption
        r = run_claim(self.claim, Context(digits=opt("lazysi_digits"), quick=opt("lazysi_quick")))
        if not r.passed:
            raise ClaimFailed(r)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ClaimFailed):
            r = excinfo.value.result
            return (f"claim {r.id} failed: {r.statement}\n  symbolic: {r.symbolic}: {r.symbolic_detail}\n"
                    f"  numeric: error {r.numeric_max_error:.3g} (tolerance {r.tolerance:.3g}, {r.digits} digits): {r.numeric_detail}")
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"lazysi claim {self.claim.id}"


class ClaimFailed(Exception):
    def __init__(self, result):
        super().__init__(result.id)
        self.result = result


class _Claims(pytest.File):
    def __init__(self, *, claims, **kwargs):
        super().__init__(**kwargs)
        self._claims = claims

    def collect(self):
        for claim in self._claims:
            yield ClaimItem.from_parent(self, name=claim.id, claim=claim)


def pytest_collection_modifyitems(session, config, items) -> None:
    paths = list(config.getoption("lazysi_claims")) + _CONFTEST_PATHS
    builtin = config.getoption("lazysi_builtin")
    if not paths and not builtin:
        return
    from lazysi.proofs.registry import ClaimLoadError, REGISTRY, claims, load_claim_files

    for path in dict.fromkeys(paths):
        try:
            ids = load_claim_files(path)
        except ClaimLoadError as exc:
            raise pytest.UsageError(str(exc)) from None
        node = _Claims.from_parent(session, path=Path(path).resolve(), claims=[REGISTRY[i] for i in ids])
        items.extend(node.collect())
    if builtin:
        node = _Claims.from_parent(session, path=Path(__file__).resolve(), claims=claims())
        items.extend(node.collect())
