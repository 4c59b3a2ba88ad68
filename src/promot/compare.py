"""`promot compare`: which way of fine-tuning keeps most of the model's other abilities at the target score?

Trains every named method on the config's data with its stage-2 budget (one run directory each, `OUT/<method>`),
evaluates the base model and every run with one evaluation spec (CIs included), and renders one report whose
forgetting-frontier plot and headline answer the question. `promot demo` is this on the world config.
"""
from __future__ import annotations

import logging
from pathlib import Path

from promot.errors import ConfigError

log = logging.getLogger(__name__)


def method_configs(config: str | Path | dict, methods: list[str], out: str | Path,
                   overrides: list[str] | None = None) -> list:
    """One validated RunConfig per method: the user's config with `method` and `output_dir=OUT/<method>` set.
    Every method is checked (names, its rooms' settings: replay data, α grid, ...) before any is trained."""
    import dataclasses

    from promot.config import load_config, validate
    from promot.training import METHODS
    from promot.training.pipeline import check_method, check_output_dir

    if unknown := [m for m in methods if m not in METHODS]:
        raise ConfigError(f"--methods: unknown {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"--methods: name each method once ({', '.join(methods) or 'none given'})")
    shared = load_config(config, overrides)
    cfgs = []
    for m in methods:
        cfg = validate(dataclasses.replace(shared, method=m, output_dir=str(Path(out) / m)))
        check_method(cfg, METHODS[m])
        check_output_dir(cfg)
        cfgs.append(cfg)
    return cfgs


def compare(config: str | Path | dict, methods: list[str], spec, out: str | Path = "runs/compare",
            overrides: list[str] | None = None) -> tuple[list[Path], Path]:
    """Train each method, evaluate base and runs with `spec` (an `evaluate.runner.EvalSpec`), render the report.
    Returns (run directories, report.html)."""
    from promot import api
    from promot.evaluate.runner import check_tasks, evaluate
    from promot.report.render import render

    from promot.lock import run_lock

    cfgs = method_configs(config, methods, out, overrides)
    check_tasks(spec)
    with run_lock(out):  # one compare per OUT; each run also holds its own lock while it trains and is evaluated
        runs = [api.train(cfg) for cfg in cfgs]
        log.info("evaluating base and %d runs on %s", len(runs), ", ".join(spec.tasks))
        evaluate(runs, spec)
        return runs, render(runs, Path(out) / "report")
