"""`promot lm-eval ARGS`: lm-eval's own CLI with the `promot` model registered and promot's suites indexed (lm-eval
0.4.x has no plugin hook for either, so both are added here, where its CLI runs)."""
from __future__ import annotations

import sys


def lm_eval_cli(argv: list[str]) -> int:
    import promot.evaluate.lm_eval_model  # noqa: F401  (registers --model promot)
    from lm_eval.__main__ import cli_evaluate

    with_shipped_suites()
    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
    return 0


def with_shipped_suites() -> None:
    """Make lm-eval's TaskManager also index promot's suites (mini, world, paper) under any user --include_path:
    its CLI takes a single path, so the suites are added where the manager is built (user paths listed last win)."""
    import lm_eval.tasks as tasks

    from promot.evaluate.suites import SUITES_DIR

    base = tasks.TaskManager
    if getattr(base, "promot_suites", False):
        return

    class WithSuites(base):
        promot_suites = True

        def __init__(self, *args, include_path=None, **kwargs):
            given = list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
            given = [str(p) for p in given if p and str(p) != str(SUITES_DIR)]
            super().__init__(*args, include_path=[str(SUITES_DIR), *given], **kwargs)

    tasks.TaskManager = WithSuites
