"""The Python API — and the pipeline's table of contents: data → soft prompt → stage 1 → stage 2 → run directory.

The CLI is a thin layer over these functions: `train(config)`, `resume(run_dir)`, `load_run(run_dir)` (inference:
`LoadedRun.generate`), `generate(run_dir, text)`; `promot.compare(config, methods, spec)` (compare.py: every method on
the same data and budget, evaluated, one report) builds on them. Under `accelerate launch` every process runs them; only the main process writes.

    ① data, ② soft prompt   training/pipeline.py `prepare` (data/, prompt/, models/; everything validated)
    ③ stage 1               training/stage1_prompt_tuning.py (on the Trainer loop in training/loop.py)
    ④ stage 2               training/stage2_model_tuning.py
    ⑤ run directory         training/pipeline.py `write_run` (names: rundir.py); read back by runs.py `load_run`
    ④ the method's rooms    training/methods/ (full, lora; add-ons replay, l2_sp, wise_ft); their settings: methods/
    evaluation, report      evaluate/runner.py `evaluate`, report/render.py `render`; compare.py: all of it per method
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from promot import rundir
from promot.config import RunConfig, load_config, validate
from promot.distributed import is_main_process, wait_for_everyone
from promot.errors import ConfigError
from promot.lock import run_lock
from promot.rundir import read_run_info
from promot.runs import LoadedRun, load_run  # noqa: F401  (load_run lives in runs.py)
from promot.training.pipeline import (Prepared, data_fingerprint, prepare, run_prepared, start_run,  # noqa: F401
                                      write_run)
from promot.training.preempt import catch_signals
from promot.training.resume import check_config_unchanged


def train(config: RunConfig | str | Path | dict, overrides: list[str] | None = None,
          callbacks: list | None = None) -> Path:
    """Run one method end to end; returns the run directory. Everything is validated before anything is written;
    the run directory's lock (promot/lock.py) is held from before the output directory is checked until the end.
    SIGTERM/SIGINT finish the step, write a checkpoint and raise `Interrupted` (resume it with `resume`).
    `callbacks`: extra transformers TrainerCallbacks for every stage."""
    cfg = validate(config) if isinstance(config, RunConfig) else load_config(config, overrides)  # built by hand too
    run_dir = Path(cfg.output_dir)
    with run_lock(run_dir):  # a second writer is refused here, before anything loads
        p = prepare(cfg)                                                             # ① data, ② soft prompt
        wait_for_everyone()  # every process has checked the output directory before the main one claims it
        if is_main_process():
            start_run(p)
        wait_for_everyone()
        with catch_signals():  # from here a signal means: finish the step, checkpoint, stop
            return run_prepared(p, run_dir, False, callbacks)


def resume(run_dir: str | Path, callbacks: list | None = None) -> Path:
    """Continue a run that died (killed, preempted, OOM) from its last complete checkpoint, in either stage. The
    result equals the uninterrupted run's: Trainer restores optimizer, scheduler, RNG and data position, and the
    checkpoint restores best-so-far selection. Refused, with nothing touched, when the run is complete, another
    process writes it, or its config or training data changed since it started."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a promot run directory (no {rundir.CONFIG})")
    with run_lock(run_dir):
        if (run_dir / rundir.RUN_INFO).exists():
            raise ConfigError(f"{run_dir}: the run is complete ({rundir.RUN_INFO} exists); nothing to resume")
        started = load_config(run_dir / rundir.CONFIG)
        check_config_unchanged(run_dir, started)
        p = prepare(dataclasses.replace(started, output_dir=str(run_dir)), resuming=True)
        recorded = run_dir / rundir.DATA_FINGERPRINT
        if recorded.exists() and recorded.read_text().strip() != data_fingerprint(p):
            raise ConfigError(f"{recorded}: the training data changed since the run started; resuming would not "
                              "continue the same run (restore the data, or start a new run)")
        with catch_signals():
            return run_prepared(p, run_dir, True, callbacks)


def diagnose_gradient_alignment(config: RunConfig | str | Path | dict, overrides: list[str] | None = None,
                                every: int = 25) -> Path:
    """Plain fine-tuning on the config's task with gradient alignment logged every `every` steps (paper §3.3).
    Writes to `<output_dir>-gradient-alignment` unless an override names output_dir."""
    cfg = config if isinstance(config, RunConfig) else load_config(config, overrides)
    named = any(o.startswith("output_dir=") for o in overrides or [])
    cfg = dataclasses.replace(cfg, method="finetune", monitor=dataclasses.replace(cfg.monitor, alignment_every=every),
                              output_dir=cfg.output_dir if named else f"{cfg.output_dir}-gradient-alignment")
    return train(validate(cfg))


def curve_ends(scores: list[dict], at: str, kept) -> str:
    """The first, best (the kept one) and last evaluated points of a stage, `at:score` each: one short line however
    many points were evaluated (every one is in metrics.jsonl and run.json)."""
    ends = {"first": scores[0], "best": next((s for s in scores if s[at] == kept), None), "last": scores[-1]}
    shown = [(label, s) for label, s in ends.items() if s is not None]
    return ", ".join(f"{label} {s[at]:g}:{s['target_score']:.1f}" for label, s in shown) + f" of {len(scores)} {at}s"


def summary(run_dir: str | Path) -> list[str]:
    """One line per stage: best target score and where it was selected; then the leakage guard's verdict."""
    record = read_run_info(run_dir)
    lines = []
    for name, h in record.stages.items():
        at = "alpha" if "best_alpha" in h else "step"  # wise-ft selects over its α grid, not over steps
        lines.append(f"{record.method} {name}: best {h['metric']} {h['best_score']:.2f} at {at} {h['best_' + at]:g} "
                     f"({curve_ends(h['scores'], at, h['best_' + at])})")
    if record.guard is not None:
        lines.append(f"{record.method} guard: {record.guard.describe()}")
    return lines


def generate(run_dir: str | Path, texts: list[str] | str, with_prompt: bool | None = None, max_new_tokens: int = 32,
             prompt_name: str | None = None) -> list[str]:
    """Continue each text with the tuned model, with or without the run's prompt (or a carried one), greedy.
    `with_prompt`: None attaches the run's prompt when it has one; True requires it (a run without one is refused,
    not silently run bare); False never attaches it."""
    from promot.errors import CheckpointError
    from promot.runs import prompt_names

    record = read_run_info(run_dir)
    if with_prompt and not prompt_name and not record.prompt:
        names = prompt_names(run_dir)
        pick = f"; pick one of its prompts with --prompt-name ({', '.join(names)})" if names else ""
        raise CheckpointError(f"{run_dir}: the run has no prompt of its own (method {record.method}){pick}, "
                              "or use --no-prompt")
    attach = with_prompt is not False
    return load_run(run_dir, attach, prompt_name).generate(texts, prompt=attach, max_new_tokens=max_new_tokens)
