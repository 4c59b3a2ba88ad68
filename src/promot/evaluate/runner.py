"""`promot eval`: what a fine-tune cost, on any lm-eval task, for every variant that matters.

Variants: `base` (the pretrained model), `tuned` (the fine-tuned model *without* the prompt: the ProMoT way for
every other task) and `tuned+prompt` (with it: the fine-tuned task, and what leaks when the prompt is left on).
Each runs through lm-eval's `simple_evaluate` at every shot count. Writes RUN/eval.json (lm-eval's own result
blocks kept), RUN/flips.jsonl and RUN/flips.md (right under the base, wrong after tuning, with generations).
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch

from promot import rundir
from promot.errors import ConfigError
from promot.data.saved import read_examples_file
from promot.eval_record import BASE, PROMPTED, TUNED, Delta, EvalRecord, TaskScore, VariantSummary
from promot.evaluate.metrics import (AnswerFormat, flips, item_scores, leakage, norm_avg, paired_bootstrap,
                                     primary_metric, proportion_ci, sample_answer, task_score)
from promot.evaluate.spec import EvalSpec, spec_from_options  # noqa: F401  (spec.py: what to evaluate, and how)
from promot.io import atomic_write_json, atomic_write_text
from promot.lock import run_lock
from promot.progress import Progress, quiet_lm_eval
from promot.evaluate.suites import SUITES_DIR
from promot.prompt import PromptedLM

log = logging.getLogger(__name__)


def task_manager(include_path: list[str] | None, tasks: list[str] | None = None):
    """lm-eval's TaskManager over promot's suites + `include_path`; lm-eval's own ~14k task YAMLs are indexed only
    when `tasks` needs them (indexing them costs ~20 s, more than evaluating a small model on a whole suite)."""
    from lm_eval.tasks import TaskManager

    paths = [str(SUITES_DIR), *(include_path or [])]
    if tasks is not None:
        local = TaskManager(include_path=paths, include_defaults=False)
        if all(t in local.all_tasks for t in tasks):
            return local
    return TaskManager(include_path=paths)


@functools.cache
def _env_info() -> dict:
    """lm-eval's environment block, collected once per process: it costs ~1 s (torch's collect_env) and shells out
    to `git` (printing "fatal: not a git repository" outside one) on *every* simple_evaluate call."""
    import subprocess

    from lm_eval.loggers.utils import add_env_info

    info: dict = {}
    add_env_info(info)
    try:
        git = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=False)
        info["git_hash"] = git.stdout.strip() or None
    except OSError:  # no git on this machine
        info["git_hash"] = None
    return info


@contextlib.contextmanager
def lean_lm_eval():
    """Within it, lm-eval's per-call overheads that dwarf a small model's evaluation are taken out; results are
    unchanged, and lm-eval is itself again on leaving (so lm-eval run beside promot, as in the bench, is untouched).
    - the environment block (above) is collected once per process;
    - Jinja templates are compiled once per template string, not once per document and field (12k compiles for
      one world-suite pass at 2 shot counts: half the time)."""
    import lm_eval.evaluator as ev
    import lm_eval.utils as lu

    saved = ev.add_env_info, ev.get_git_commit_hash, lu.apply_template
    compiled = _compiled_template()
    ev.add_env_info = lambda storage: storage.update(_env_info())
    ev.get_git_commit_hash = lambda: _env_info()["git_hash"]
    lu.apply_template = functools.wraps(saved[2])(lambda template, doc: compiled(template).render(**doc))
    try:
        yield
    finally:
        ev.add_env_info, ev.get_git_commit_hash, lu.apply_template = saved


@functools.cache
def _compiled_template():
    import lm_eval.utils as lu

    return functools.lru_cache(maxsize=1024)(lu.env.from_string)


def run_lm_eval(lm: PromptedLM, tokenizer, spec: EvalSpec, k: int, manager, greedy_pool: bool = True) -> dict:
    """One simple_evaluate call: every task at k shots, samples logged (for leakage and flips). `greedy_pool=False`:
    HFLM's own batches of `generate` (the bench's comparison)."""
    from lm_eval import simple_evaluate

    from promot.evaluate.lm_eval_model import PromptedHFLM

    device = str(next(lm.parameters()).device)
    hflm = PromptedHFLM(lm, tokenizer=tokenizer, batch_size=spec.batch_size, device=device, bf16=spec.bf16,
                        greedy_pool=greedy_pool)
    try:
        with quiet_lm_eval(), lean_lm_eval():
            return simple_evaluate(model=hflm, tasks=list(spec.tasks), num_fewshot=k, limit=spec.limit,
                                   task_manager=manager, log_samples=True, bootstrap_iters=0, random_seed=0,
                                   numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0,
                                   apply_chat_template=spec.apply_chat_template,
                                   fewshot_as_multiturn=spec.fewshot_as_multiturn and spec.apply_chat_template)
    except KeyError as e:
        raise ConfigError(f"unknown lm-eval task {e} (built-in, or a YAML under --include-path)") from None


def check_tasks(spec: EvalSpec) -> None:
    """Refuse task names lm-eval does not know, from its index alone (no dataset is loaded): what `compare` checks
    before it trains anything, so a typo in --tasks does not cost the training."""
    manager = task_manager(spec.include_path, list(spec.tasks))
    if unknown := [t for t in spec.tasks if t not in manager.all_tasks]:
        raise ConfigError(f"unknown lm-eval task {', '.join(map(repr, unknown))} (built-in, or a YAML under "
                          "--include-path)")


def target_tasks(results: dict, spec: EvalSpec) -> set[str]:
    """Tasks in the fine-tuned format: named in the spec, or marked `metadata.fine_tuning_target` in their YAML."""
    declared = {t for t, c in results.get("configs", {}).items()
                if (c.get("metadata") or {}).get("fine_tuning_target")}
    return set(spec.target_tasks) | declared


def split_tasks(spec: EvalSpec, manager) -> tuple[list[str], list[str]]:
    """Expand groups/tags into leaf tasks: (ICL tasks, target tasks), so each target is run only once."""
    try:
        loaded = manager.load(list(spec.tasks))["tasks"]
    except KeyError as e:
        raise ConfigError(f"unknown lm-eval task {e} (built-in, or a YAML under --include-path)") from None
    targets = sorted(n for n, t in loaded.items()
                     if n in spec.target_tasks or (t.config.metadata or {}).get("fine_tuning_target"))
    return [n for n in loaded if n not in targets], targets


def run_all_shots(lm: PromptedLM, tokenizer, spec: EvalSpec, manager, desc: str = "eval") -> dict[str, dict]:
    """ICL tasks at every shot count; target tasks once, at `target_shots`, merged into each result. One progress
    line per call (lm-eval passes done / to do)."""
    icl, targets = split_tasks(spec, manager)
    passes = [(k, icl) for k in spec.shots if icl] + ([(spec.target_shots, targets)] if targets else [])
    done: dict[tuple[int, bool], dict] = {}
    with Progress(len(passes), desc, unit="lm-eval passes") as line:
        for i, (k, tasks) in enumerate(passes, 1):
            line.note(f"{'target' if tasks is targets else 'ICL'} {k}-shot")
            done[k, tasks is targets] = run_lm_eval(lm, tokenizer, replace(spec, tasks=tasks), k, manager)
            line.update_to(i)
        line.note("")
    res = {f"k={k}": done.get((k, False), {}) for k in spec.shots}
    if targets:
        t = done[spec.target_shots, True]
        for r in res.values():
            for key in ("results", "samples", "configs", "n-shot"):
                r.setdefault(key, {}).update(t.get(key, {}))
    return res


def headline_targets(results: dict, spec: EvalSpec, trained: set[str] | None) -> set[str]:
    """The target the run trained - the headline score: `--target-task` when given, else the fine-tuning-target
    tasks whose dataset is the run's training data (a suite marks every fine-tuning format it has, e.g. the world
    suite's true_false and brackets, but a run trains one); none of them match (or no run): all of them."""
    if spec.target_tasks:
        return set(spec.target_tasks)
    declared = target_tasks(results, spec)
    configs = results.get("configs", {})

    def matches(task: str) -> bool:
        c = configs.get(task, {})
        keys = {(c.get("dataset_kwargs") or {}).get("name"), c.get("dataset_name")}
        return any(task == n or task.endswith(f"_{n}") or n in keys for n in trained or ())

    return {t for t in declared if matches(t)} or declared


@functools.cache
def _warn_once(line: str) -> None:
    log.warning("%s", line)


def summarize(results: dict, spec: EvalSpec, fmt: AnswerFormat | None,
              trained: set[str] | None = None) -> VariantSummary:
    """Per-task 0-100 scores, Norm. Avg. over the non-target tasks, leakage of the fine-tuned format.
    `target_tasks` is the headline (what the run trained); other fine-tuning formats are `other_format_tasks`:
    scored, and kept out of Norm. Avg. and leakage like the target."""
    samples = results.get("samples", {})
    targets = target_tasks(results, spec)
    headline = headline_targets(results, spec, trained)
    tasks, items = {}, {}
    unaveraged = []
    for name, block in sorted(results["results"].items()):
        if name not in samples:  # group aggregates carry no samples of their own
            continue
        ts = task_score(block, results.get("higher_is_better", {}).get(name), samples[name])
        tasks[name] = TaskScore(ts.metric, ts.score, len(samples[name]), None if ts.averaged else ts.note)
        items[name] = item_scores(samples[name], ts.metric) if ts.averaged else None
        if not ts.averaged:
            unaveraged.append(name)
            if name not in targets:
                _warn_once(f"{name}: {ts.note}")
    icl = {t: v.score for t, v in tasks.items() if t not in targets and t not in unaveraged}
    answers = [sample_answer(s) for t in icl for s in sorted(samples[t], key=lambda s: s.get("doc_id", 0))
               if results.get("configs", {}).get(t, {}).get("output_type") == "generate_until"]
    return VariantSummary(tasks, norm_avg(icl), tuple(sorted(headline & set(tasks))),
                          tuple(sorted((targets - headline) & set(tasks))), tuple(sorted(unaveraged)),
                          None if fmt is None else leakage(answers, fmt), len(answers),
                          {t: v for t, v in items.items() if v is not None},
                          None if fmt is None else tuple(int(fmt.matches(a)) for a in answers))


def run_format(record: rundir.RunRecord) -> AnswerFormat | None:
    """The fine-tuned task's label set, as training recorded it (None for open-ended targets)."""
    fmt = record.answer_format
    return None if fmt is None else AnswerFormat(tuple(fmt.labels), fmt.regex)


def _variants(run_dir: Path):
    from promot.runs import checked_prompt, load_run, prompt_names

    tuned = load_run(run_dir, with_prompt=True)
    yield TUNED, PromptedLM(tuned.lm.model, None).eval(), tuned.tokenizer
    if tuned.lm.prompt is not None:
        yield PROMPTED, tuned.lm, tuned.tokenizer
    for name in prompt_names(run_dir):  # multi-task / sequential runs: each task with its own prompt, on this model
        prompt = checked_prompt(run_dir, name, tuned.lm.model, tuned.record.model.fingerprint)
        lm = PromptedLM(tuned.lm.model, prompt, bos_id=tuned.lm.bos_id).eval()
        yield f"{PROMPTED}:{name}", lm, tuned.tokenizer


def _base(name: str, dtype: str):
    from promot.models import load_model

    loaded = load_model(name, dtype)
    return PromptedLM(loaded.model.eval(), None).eval(), loaded.tokenizer


def _flip_report(run_dir: Path, base: dict, tuned: dict, spec: EvalSpec) -> None:
    rows = []
    for k_key, res in tuned.items():
        targets = target_tasks(res, spec)
        for task, samples in res.get("samples", {}).items():
            if task in targets or task not in base[k_key].get("samples", {}):
                continue
            metric = primary_metric(res["results"][task], res.get("higher_is_better", {}).get(task), samples)[0]
            rows += [{"task": task, "shots": k_key, **f} for f in flips(base[k_key]["samples"][task], samples, metric)]
    atomic_write_text(run_dir / rundir.FLIPS, "".join(json.dumps(r) + "\n" for r in rows))
    md = ["# Flips: right under the base model, wrong after tuning (no prompt)", ""]
    for r in rows[:200]:
        md += [f"## {r['task']} ({r['shots']}, doc {r['doc_id']})", "", "```", r["input"][-600:], "```",
               f"- target: `{r['target']}`", f"- base: `{r['base'].strip()[:200]}`",
               f"- tuned: `{r['tuned'].strip()[:200]}`", ""]
    atomic_write_text(run_dir / rundir.FLIPS_MD, "\n".join(md) + f"\n{len(rows)} flips in all.\n")


def evaluate(runs: list[str | Path], spec: EvalSpec, base: str | None = None, out: str | Path | None = None) -> list[Path]:
    """Evaluate the base once and every run's variants; write RUN/eval.json for each run (with no runs: the base
    alone, to OUT/eval.json). Returns the files written."""
    run_dirs = [Path(r) for r in runs]
    records = [rundir.read_run_info(r) for r in run_dirs]
    for r in run_dirs:  # a corrupt saved validation set is refused before any pass, not after them all
        if (r / rundir.VALIDATION).is_file():
            read_examples_file(r / rundir.VALIDATION)
    base = base or (records[0].base_model.source if records else None)
    if base is None:
        raise ConfigError("nothing to evaluate: give run directories or --base")
    with ExitStack() as held:  # one writer per directory: a second eval (or a train) of it is refused at once
        for d in run_dirs or [Path(out or "eval-base")]:
            held.enter_context(run_lock(d))
        return _evaluate(run_dirs, records, spec, base, out)


def _evaluate(run_dirs: list[Path], records: list, spec: EvalSpec, base: str, out: str | Path | None) -> list[Path]:
    manager = task_manager(spec.include_path, list(spec.tasks))
    torch.manual_seed(0)
    base_lm, base_tok = _base(base, "float32")
    base_res = run_all_shots(base_lm, base_tok, spec, manager, "eval base")
    base_own = base_lm  # kept for the score on each run's own validation data
    written = []
    for run_dir, record in zip(run_dirs, records) if run_dirs else [(Path(out or "eval-base"), None)]:
        fmt = spec.fmt or (run_format(record) if record else None)
        trained = set(record.trained_data) if record else None
        variants = {BASE: {k: summarize(v, spec, fmt, trained) for k, v in base_res.items()}}
        blocks = {BASE: {k: _lm_eval_block(v) for k, v in base_res.items()}}
        scored = []  # the variants, for the score on the run's own validation data
        unchanged = record is not None and record.base_model.source == base and \
            record.model.fingerprint == record.base_model.fingerprint  # prompt-tuning: the tuned model is the base
        for name, lm, tok in _variants(run_dir) if run_dirs else ():
            scored.append((name, lm, tok))
            same = name == TUNED and unchanged
            res = base_res if same else run_all_shots(lm, tok, spec, manager, f"eval {run_dir.name} {name}")
            variants[name] = {k: summarize(v, spec, fmt, trained) for k, v in res.items()}
            blocks[name] = {k: _lm_eval_block(v) for k, v in res.items()}
            if name == TUNED:
                _flip_report(run_dir, base_res, res, spec)
        own = None
        if run_dirs:
            from promot.evaluate.target import own_target
            from promot.precision import resolve_bf16

            own = own_target(run_dir, [(BASE, base_own, base_tok), *scored], spec.batch_size, resolve_bf16(spec.bf16))
        variants = _with_leakage_ci(variants, spec.bootstrap)
        record = EvalRecord(base, variants, _deltas(variants, spec.bootstrap), tuple(spec.tasks), tuple(spec.shots),
                            spec.limit, spec.apply_chat_template, spec.fewshot_as_multiturn, tuple(spec.target_tasks),
                            spec.target_shots, tuple(sorted(trained)) if trained else None,
                            None if fmt is None else fmt.describe, own, blocks)
        atomic_write_json(run_dir / rundir.EVAL, record.to_json())
        if run_dirs:
            from promot.model_card import write_model_card

            write_model_card(run_dir)  # the card gains the eval table
        written.append(run_dir / rundir.EVAL)
    return written


def _lm_eval_block(res: dict) -> dict:
    """lm-eval's own result block (without the per-sample logs), for comparison elsewhere."""
    return {k: res[k] for k in ("results", "versions", "n-shot", "higher_is_better", "n-samples") if k in res}


def _with_leakage_ci(variants: dict[str, dict[str, VariantSummary]], iters: int) -> dict:
    """The variants with each summary's leakage CI added when `iters` > 0 (a new mapping)."""
    return {name: {k: replace(s, leakage_ci=tuple(proportion_ci(list(s.leak_hits), iters)))
                   if iters and s.leak_hits is not None else s for k, s in per_k.items()}
            for name, per_k in variants.items()}


def _deltas(variants: dict[str, dict[str, VariantSummary]], iters: int = 1000) -> dict[str, dict[str, Delta]]:
    """Every variant minus the base, per task and in Norm. Avg., with paired-bootstrap 95% CIs when `iters` > 0."""
    base = variants[BASE]
    out: dict[str, dict[str, Delta]] = {}
    for name, per_k in variants.items():
        if name == BASE:
            continue
        out[name] = {}
        for k, summary in per_k.items():
            d = {t: v.score - base[k].tasks[t].score for t, v in summary.tasks.items()}
            d["norm_avg"] = summary.norm_avg - base[k].norm_avg
            ci: dict = {}
            if iters:
                ci = paired_bootstrap(base[k].items, summary.icl_items, iters)
                targets = {t: v for t, v in summary.items.items() if t in summary.target_tasks}
                ci.update({t: v for t, v in paired_bootstrap(base[k].items, targets, iters).items()
                           if t != "norm_avg"})
            out[name][k] = Delta(d, {t: tuple(v) for t, v in ci.items() if v is not None})
    return out


def summary_lines(eval_json: Path) -> list[str]:
    """A small table: variant × shots → Norm. Avg. (delta vs base), leakage, target-task scores."""
    data = EvalRecord.from_json(json.loads(Path(eval_json).read_text()))
    lines = [f"{'variant':<14} {'shots':<5}{'Norm.Avg':>9}{'Δ base [95% CI]':>23}{'leakage [95% CI]':>20}  target"]
    for name, per_k in data.variants.items():
        for k, s in per_k.items():
            ci = data.delta_ci(name, k)
            delta = f"{data.delta(name, k) or 0.0:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
            leak = "-" if s.leakage is None else f"{s.leakage:.2f}"
            if s.leakage_ci:
                leak += f" [{s.leakage_ci[0]:.2f}, {s.leakage_ci[1]:.2f}]"
            target = ", ".join(f"{t} {s.tasks[t].score:.1f}" for t in s.target_tasks)
            lines.append(f"{name:<14} {k[2:]:<5}{s.norm_avg:>9.1f}{delta:>23}{leak:>20}  {target}")
    own = data.own_target
    if own and own.get("scores"):
        lines.append(f"own validation data ({own['metric']}, n={own.get('n')}): "
                     + ", ".join(f"{name} {v:.1f}" for name, v in own["scores"].items()))
    if list(data.variants) == [BASE]:  # base only: the per-task scores are the point
        for k, s in data.variants[BASE].items():
            lines += [f"  {k[2:]}-shot {t:<24}{v.score:>6.1f}  (n={v.n})" for t, v in s.tasks.items()]
    return lines
