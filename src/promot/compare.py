"""`promot compare`: which way of fine-tuning keeps most of the model's other abilities at the target score?

Trains every named method on the config's data with its stage-2 budget (one run directory each, `OUT/<method>`),
evaluates the base model and every run with one evaluation spec (CIs included), and renders one report whose
forgetting-frontier plot and headline answer the question. `promot demo` is this on the world config.

With several seeds (`seeds=[0, 1, 2]`) every method runs once per seed, at `OUT/<method>/seed-<s>`, and the report
pools each method's seeds (report/frontier.py): means, and 95% intervals over seeds and items. A compare that was
killed picks up where it stopped: a finished run whose config matches is reused, an unfinished one with the same
config is resumed from its last checkpoint (`promot train --resume`); `overwrite=true` retrains everything.

With an lr sweep (`--lr-sweep 1e-5,1e-4`) every method with a stage 2 runs once per lr, at `OUT/<method>-lr<lr>`,
trained at that lr as its own (`lora.lr` for LoRA, `stage2.lr` for full fine-tuning): each (method, lr) is a point
of the frontier, and the headline names the one that keeps the most ICL at the target.
"""
from __future__ import annotations

import logging
from pathlib import Path

from promot.errors import ConfigError

log = logging.getLogger(__name__)


def with_lr(cfg, lr: float):
    """`cfg` with its method trained at stage-2 lr `lr`: in the method's own section when it has one (`lora.lr`,
    `replay.lr`, …: the key `stage2_lr` reads first), else `stage2.lr`."""
    import dataclasses

    from promot.methods import stage2_lr

    _, key = stage2_lr(cfg)
    if key == "stage2.lr":
        from promot.methods import METHODS, SECTIONS

        recipe = METHODS[cfg.method]
        key = next((f"{SECTIONS[r]}.lr" for r in (recipe.stage2, *recipe.addons) if r in SECTIONS), key)
    section = key.split(".")[0]
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), lr=lr)})


def method_configs(config: str | Path | dict, methods: list[str], out: str | Path,
                   overrides: list[str] | None = None, seeds: list[int] | None = None,
                   lrs: list[float] | None = None) -> list:
    """One validated RunConfig per method (and seed, and lr): the user's config with `method` and
    `output_dir=OUT/<method>` set (several seeds: `seed` too, and `OUT/<method>/seed-<s>`; an lr sweep: the method's
    own lr, and `OUT/<method>-lr<lr>`; a method without stage 2 runs once). Every method is checked (names, its
    rooms' settings: replay data, α grid, ...) before any is trained."""
    import dataclasses

    from promot.config import load_config, validate
    from promot.methods import METHODS as RECIPES
    from promot.rundir import seed_dir
    from promot.training import METHODS
    from promot.training.environment import check_environment

    if unknown := [m for m in methods if m not in METHODS]:
        raise ConfigError(f"--methods: unknown {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"--methods: name each method once ({', '.join(methods) or 'none given'})")
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds)):
        raise ConfigError(f"--seeds: name each seed (an integer >= 0) once ({', '.join(map(str, seeds)) or 'none'})")
    shared = load_config(config, overrides)
    cfgs = []
    for m in methods:
        sweep = lrs if lrs and RECIPES[m].stage2 else [None]
        if lrs and not RECIPES[m].stage2:
            log.info("%s has no stage 2: trained once, whatever the lr sweep", m)
        for lr in sweep:
            name = m if lr is None else f"{m}-lr{lr:g}"
            for s in seeds or [shared.seed]:
                where = Path(out) / name if not seeds or len(seeds) == 1 else Path(out) / name / seed_dir(s)
                cfg = dataclasses.replace(shared, method=m, output_dir=str(where), seed=s)
                cfg = validate(cfg if lr is None else with_lr(cfg, lr))
                check_environment(cfg, METHODS[m])
                cfgs.append(cfg)
    return cfgs


def plan(cfg) -> str:
    """What to do with one run's directory: `train` (absent or empty, or overwrite=true), `reuse` (finished, same
    config), `resume` (started with the same config, not finished). Anything else is refused as `promot train`
    refuses it (a non-empty directory without overwrite=true), before any run is trained."""
    from promot import rundir
    from promot.config import dump_config
    from promot.training.pipeline import check_output_dir
    from promot.training.resume import changed_keys

    run = Path(cfg.output_dir)
    recorded = run / rundir.CONFIG
    if rundir.seed_of(run) is not None and (run.parent / rundir.CONFIG).is_file():
        raise ConfigError(f"{run.parent}: holds a one-seed run; several seeds go to <method>/seed-<s> beside no run "
                          "(use another --out)")
    changed = changed_keys(run, cfg) if recorded.is_file() else None
    # no fingerprint: a run from before them, compared by its config.yaml's text
    same = changed == [] or changed is None and recorded.is_file() and recorded.read_text() == dump_config(cfg)
    if not cfg.overwrite and same:
        return "reuse" if (run / rundir.RUN_INFO).is_file() else "resume"
    if recorded.is_file() and not cfg.overwrite:
        keys = f"{', '.join(changed)} changed; " if changed else ""
        raise ConfigError(f"{run}: holds a run with another config ({keys}delete it, or set overwrite=true to retrain)")
    check_output_dir(cfg)
    return "train"


def train_all(cfgs: list, todo: list[str] | None = None) -> list[Path]:
    """Each config's run: trained, reused or resumed as `plan` says (every plan made first, so a refusal comes
    before any training; methods that start with the same stage 1 train it once: training/stage1_reuse.py).
    Returns the run directories in order."""
    from promot import api
    from promot.shared_work import sharing

    todo = todo or [plan(cfg) for cfg in cfgs]
    runs = []
    with sharing():
        for cfg, what in zip(cfgs, todo):
            run = Path(cfg.output_dir)
            if what == "reuse":
                log.info("%s: finished with the same config: reused", run)
            elif what == "resume":
                log.info("%s: unfinished, same config: resumed from its last checkpoint", run)
            runs.append(run if what == "reuse" else api.resume(run) if what == "resume" else api.train(cfg))
    return runs


def compare(config: str | Path | dict, methods: list[str], spec, out: str | Path = "runs/compare",
            overrides: list[str] | None = None, seeds: list[int] | None = None,
            lrs: list[float] | None = None) -> tuple[list[Path], Path]:
    """Train each method (once per seed in `seeds`, once per stage-2 lr in `lrs`), evaluate base and runs with
    `spec` (an `evaluate.runner.EvalSpec`), render the report. Returns (run directories, report.html)."""
    from promot.evaluate.runner import check_tasks, evaluate
    from promot.report.render import render

    from promot.lock import run_lock

    cfgs = method_configs(config, methods, out, overrides, seeds, lrs)
    todo = [plan(cfg) for cfg in cfgs]
    check_tasks(spec)
    with run_lock(out):  # one compare per OUT; each run also holds its own lock while it trains and is evaluated
        runs = train_all(cfgs, todo)
        log.info("evaluating base and %d runs on %s", len(runs), ", ".join(spec.tasks))
        evaluate(runs, spec)
        return runs, render(runs, Path(out) / "report")
