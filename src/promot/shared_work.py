"""Work the runs of one compare share instead of repeating — stage 1 where its inputs are the same
(training/stage1_reuse.py), the specialization monitor's step-0 reading of the same starting weights
(evaluate/monitor.py) — kept only inside `sharing()`: outside it every run does its own work, and nothing outlives
the compare that made it. Each cache's key holds every input its result depends on, so sharing never changes a
result, only how often it is computed."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_SCOPE: dict[str, dict] | None = None
"""The open scope's caches by kind of work; None: no scope open."""


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Runs trained inside share work whose inputs are the same (compare's methods); a nested scope joins the
    outer one."""
    global _SCOPE
    outer, _SCOPE = _SCOPE, {} if _SCOPE is None else _SCOPE
    try:
        yield
    finally:
        _SCOPE = outer


def shared(kind: str) -> dict[Any, Any] | None:
    """The open scope's cache for one kind of work (None: no scope open, so nothing is shared)."""
    return None if _SCOPE is None else _SCOPE.setdefault(kind, {})
