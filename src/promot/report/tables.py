"""Report data: a pure function of run directories (run.json, eval.json, metrics.jsonl, flips.jsonl). No torch.
The forgetting frontier (which method keeps most ICL at the target score, over seeds) is report/frontier.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from promot.eval_record import BASE, PROMPTED, TUNED, EvalRecord, VariantSummary, read_eval
from promot.rundir import WISE_FT, RunRecord, read_flips, read_metrics, read_run_info, seed_of


@dataclass
class RunView:
    name: str
    path: Path
    info: RunRecord
    eval: EvalRecord | None
    metrics: list[dict] = field(default_factory=list)
    flips: list[dict] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.info.method

    @property
    def group(self) -> str:
        """What the run is one seed of: `promot` for `promot/seed-1`; a run outside the seed layout is its own."""
        return self.name.split("/", 1)[0]

    @property
    def method_lr(self) -> str:
        """The method and the stage-2 lr it trained at (`lora, lr 0.001`), as run.json records it (runs before the
        record: the method alone)."""
        lr = (self.info.stages.get("stage2") or {}).get("lr")
        return self.method if lr is None else f"{self.method}, lr {lr:g}"

    def best_target(self) -> float | None:
        """The selected model's validation target score: WiSE-FT's interpolated model when the run kept one (it is
        the model that was saved), else stage 2's (stage 1's) best checkpoint."""
        stages = self.info.stages
        last = stages.get(WISE_FT) or stages.get("stage2") or stages.get("stage1")
        return None if not last else last.get("best_score")


def load_runs(paths: list[str | Path]) -> list[RunView]:
    """One view per run directory, named by its folder; a seed's run (OUT/<method>/seed-<s>) `<method>/seed-<s>`."""
    views = []
    for p in map(Path, paths):
        name = p.name if seed_of(p) is None else f"{p.parent.name}/{p.name}"
        views.append(RunView(name, p, read_run_info(p), read_eval(p), read_metrics(p), read_flips(p)))
    return views


def _num(x: float) -> str:
    """Signed with a true minus sign, one decimal: −66.7, +2.5."""
    return f"{x:+.1f}".replace("-", "−")


def fmt_ci(ci: list[float] | None, scale: float = 1.0) -> str:
    """" [lo, hi]" for a 95% interval when eval.json has one, else nothing."""
    if not ci:
        return ""
    return f" [{_num(ci[0] * scale)}, {_num(ci[1] * scale)}]"


def _fmt(x: float | None, delta: float | None = None, ci: list[float] | None = None) -> str:
    if x is None:
        return "–"
    return f"{x:.1f}" if delta is None else f"{x:.1f} ({_num(delta)}{fmt_ci(ci)})"


def delta_ci(run: RunView, variant: str, k: str, key: str) -> tuple[float, float] | None:
    """The 95% paired-bootstrap interval of a delta vs base, when recorded."""
    return None if run.eval is None else run.eval.delta_ci(variant, k, key)


def shot_keys(runs: list[RunView]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in (r.eval.shot_keys if r.eval else []) if k not in keys]
    return keys


def base_summary(runs: list[RunView], k: str) -> VariantSummary | None:
    """The base model at k shots, from the first run (every run of a report is evaluated against one base)."""
    return runs[0].eval.summary(BASE, k) if runs and runs[0].eval else None


def summary_table(runs: list[RunView], k: str, with_base: bool = True) -> list[list[str]]:
    """One row per run: method, target score, Norm. Avg. (Δ vs base) and leakage, without and with the prompt."""
    head = ["run", "method", "target (val, selected)", "target task (eval)", "ICL Norm.Avg, no prompt (Δ)",
            "leakage %, no prompt", "ICL Norm.Avg, prompt on (Δ)", "leakage %, prompt on", "guard leakage %"]
    rows = [head]
    if with_base and (b := base_summary(runs, k)):
        rows.append(["base", "–", "–", _target(b), _fmt(b.norm_avg), _fmt_leak(b.leakage, b.leakage_ci),
                     "–", "–", "–"])
    for r in runs:
        used = r.eval.serving(k) if r.eval else None
        cells = [r.name, r.method_lr, _fmt(r.best_target()), _target(used) if used else "–"]
        for name in (TUNED, PROMPTED):
            s = r.eval.summary(name, k) if r.eval else None
            delta = r.eval.delta(name, k) if with_base and s else None
            ci = delta_ci(r, name, k, "norm_avg")
            cells += [_fmt(s.norm_avg, delta, ci), _fmt_leak(s.leakage, s.leakage_ci)] if s else ["–", "–"]
        rows.append([*cells, guard_cell(r)])
    return rows


def guard_cell(run: RunView) -> str:
    """The kept checkpoint's guard leakage (0-100), marked when the run is flagged; '–' without a guard."""
    g = run.info.guard
    return "–" if g is None else f"{100 * g.leakage:.1f}" + ("" if g.held else " FLAGGED")


def flagged(run: RunView) -> bool:
    """Whether the leakage guard says the run's protection did not hold."""
    return run.info.guard is not None and not run.info.guard.held


FLAG = "flagged: its leakage guard says the protection did not hold"


def guard_table(runs: list[RunView]) -> list[list[str]]:
    """One row per run with a guard: what the bare model leaks into generic requests at the start, at the kept
    checkpoint and at the best target checkpoint (0-100), the ceiling, and the verdict. [] when no run has one."""
    rows = [["run", "method", "base %", "kept % (step)", "best target step %", "ceiling (points)", "verdict"]]
    for r in runs:
        if (g := r.info.guard) is not None:
            at = str(g.step) if g.alpha is None else f"α {g.alpha:g} of {g.step}"
            rows.append([r.name, r.method, f"{100 * g.base:.1f}", f"{100 * g.leakage:.1f} ({at})",
                         f"{100 * g.best_leakage:.1f} ({g.best_step})", f"+{g.ceiling:g}",
                         "held" if g.held else "NOT PROTECTED"])
    return rows if len(rows) > 1 else []


def _target(summary: VariantSummary) -> str:
    score = summary.target_score
    return "–" if score is None else _fmt(score)


def _fmt_leak(x: float | None, ci: tuple[float, float] | None = None) -> str:
    """Leakage (a 0-1 share in eval.json) on the 0-100 scale of every score."""
    return "–" if x is None else f"{100 * x:.1f}" + fmt_ci(ci, 100).replace("+", "")


def task_table(runs: list[RunView], k: str, with_base: bool = True) -> list[list[str]]:
    """Tasks × (base, each run's variants): 0-100 scores with Δ vs base."""
    columns: list[tuple[str, RunView, str]] = []
    if with_base and runs and runs[0].eval:
        columns.append(("base", runs[0], BASE))
    columns += variant_columns(runs, k)
    if not columns:
        return []
    summaries = [(r, n, r.eval.summary(n, k)) for _, r, n in columns]
    tasks = sorted({t for _, _, s in summaries for t in s.tasks})
    rows = [["task", *(c[0] for c in columns)]]
    for t in [*tasks, "Norm.Avg"]:
        row = [t]
        for r, n, s in summaries:
            score = s.norm_avg if t == "Norm.Avg" else (s.tasks[t].score if t in s.tasks else None)
            key = "norm_avg" if t == "Norm.Avg" else t
            delta = None if n == BASE or not with_base else r.eval.delta(n, k, key)
            row.append(_fmt(score, delta, delta_ci(r, n, k, key)))
        rows.append(row)
    return rows


def variant_columns(runs: list[RunView], k: str) -> list[tuple[str, RunView, str]]:
    """(label, run, variant) for every tuned variant evaluated at k shots: tuned, tuned+prompt, tuned+prompt:<task>
    (multi-task, sequential)."""
    cols = []
    for r in runs:
        for name in (r.eval.variants if r.eval else {}):
            if name != BASE and r.eval.summary(name, k):
                label = {TUNED: "no prompt", PROMPTED: "+prompt"}.get(name, "+" + name.split(":", 1)[-1])
                cols.append((f"{r.name} {label}", r, name))
    return cols


def delta_grid(runs: list[RunView], k: str) -> tuple[list[str], list[str], list[list[float | None]], list[list]]:
    """Deltas vs base for the heatmap: (row labels = run variants, columns = tasks + Norm.Avg, values, CIs)."""
    cols = variant_columns(runs, k)
    tasks = sorted({t for _, r, n in cols for t in r.eval.summary(n, k).tasks})
    keys = [*tasks, "norm_avg"]
    values, cis = [], []
    for _, r, n in cols:
        values.append([r.eval.delta(n, k, t) for t in keys])
        cis.append([delta_ci(r, n, k, t) for t in keys])
    return [c[0] for c in cols], [*tasks, "Norm.Avg"], values, cis


def leakage_entries(runs: list[RunView], k: str) -> list[tuple[str, str, float, tuple[float, float] | None]]:
    """(label, method, leakage 0-1, its 95% CI or None) for base and every run variant with a leakage at k shots."""
    out = []
    if (b := base_summary(runs, k)) and b.leakage is not None:
        out.append(("base", "base", b.leakage, b.leakage_ci))
    for name, r, n in variant_columns(runs, k):
        s = r.eval.summary(n, k)
        if s.leakage is not None:
            out.append((name, r.method, s.leakage, s.leakage_ci))
    return out


def label(run: RunView) -> str:
    """A run's name, with its method when the name does not already say it."""
    return run.name if run.name == run.method else f"{run.name} ({run.method})"


def groups(runs: list[RunView]) -> list[list[RunView]]:
    """The runs grouped by what they are seeds of (`promot/seed-0`, `promot/seed-1` → one group), in order."""
    out: dict[str, list[RunView]] = {}
    for r in runs:
        out.setdefault(r.group, []).append(r)
    return list(out.values())


def title_of(runs: list[RunView]) -> str:
    """The page title: each run by name, or each seeded method once with its seed count."""
    return ", ".join(label(g[0]) if len(g) == 1 else f"{g[0].group} ×{len(g)} seeds" for g in groups(runs))


def headline(runs: list[RunView]) -> str | None:
    """One sentence: what each fine-tune cost in ICL (first shot count, no prompt) and how much of the target
    format leaks into other answers; the first run in full, the others compact. A method run over several seeds is
    one clause: its mean change, the seeds' range, and its leakage's mean and worst seed."""
    keys = shot_keys(runs)
    if not keys:
        return None
    parts = []
    for group in groups(runs):
        scored = [(r, r.eval.summary(TUNED, keys[0]), r.eval.delta(TUNED, keys[0])) for r in group if r.eval]
        scored = [(r, s, d) for r, s, d in scored if s is not None and d is not None]
        if not scored:
            continue
        first = not parts
        points = " points of ICL Norm.Avg" if first else " points"
        if len(scored) == 1:
            r, s, d = scored[0]
            name, ci = f"`{label(r)}`", fmt_ci(delta_ci(r, TUNED, keys[0], "norm_avg"))
            exact = f"{_num(d)}{ci}" if ci or (first and abs(d) <= 0.05) else ""
        else:
            ds = [d for _, _, d in scored]
            d = sum(ds) / len(ds)
            name = f"`{group[0].group}` over {len(scored)} seeds"
            exact = f"seeds {_num(min(ds))} to {_num(max(ds))}"
        change = (f"cost {-d:.1f}{points}" if d < -0.05 else f"gained {d:.1f}{points}" if d > 0.05
                  else "kept ICL Norm.Avg" if first else "kept it")
        if len(scored) > 1:
            change = "on average " + change
        if first:
            change += f" ({keys[0][2:]}-shot, no prompt{'; ' + exact if exact else ''})"
        elif exact:
            change += f" ({exact})"
        leaks = [s.leakage for _, s, _ in scored if s.leakage is not None]
        if leaks:
            share = f"{100 * sum(leaks) / len(leaks):.0f}%"
            if len(leaks) > 1:
                share += f" (worst seed {100 * max(leaks):.0f}%)"
            change += f" and leaks the target format into {share} of other answers" if first else f", leak {share}"
        parts.append(f"{name} {change}")
    return f"Fine-tuning {'; '.join(parts)}." if parts else None


def monitor_table(runs: list[RunView]) -> list[list[str]]:
    """The specialization monitor per run and stage-2 step: target score, ICL Norm.Avg and leakage (0-100)."""
    rows = [["run", "step", "target score (val)", "ICL Norm.Avg (no prompt)", "leakage %"]]
    for r in runs:
        target, icl, leak = (dict(curve(r, k)) for k in ("eval_target_score", "icl_score", "icl_leakage"))
        rows += [[r.name, str(s), _fmt(target.get(s)), _fmt(icl.get(s)), _fmt_leak(leak.get(s))]
                 for s in sorted(set(icl) | set(leak))]
    return rows if len(rows) > 1 else []


def curve(run: RunView, key: str, stage: str = "stage2") -> list[tuple[int, float]]:
    """(step, value) pairs logged in metrics.jsonl for one stage (e.g. icl_score, eval_target_score)."""
    return [(m["step"], m[key]) for m in run.metrics if m.get("stage") == stage and key in m]


def tradeoff(run: RunView) -> list[tuple[int, float, float]]:
    """(step, target score, ICL score) at steps where both were measured (paper App. C.3)."""
    icl = dict(curve(run, "icl_score"))
    return [(s, t, icl[s]) for s, t in curve(run, "eval_target_score") if s in icl]


def markdown(rows: list[list[str]]) -> str:
    if not rows:
        return "_no data_\n"
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out) + "\n"


def console_summary(runs: list[RunView]) -> list[str]:
    """Fixed-width text for a terminal: base, then each run - the target score of the variant that serves the
    fine-tuned task (with the prompt where there is one), and per shot count the ICL Norm.Avg (Δ vs base) and
    leakage of the variant that serves every other task (no prompt)."""
    if not runs or not runs[0].eval:
        return []
    keys = shot_keys(runs)
    w = _name_width(runs)
    head = (f"{'model':<{w}}{'target':>8}" + "".join(f"{'ICL ' + k[2:] + '-shot (Δ)':>20}{'leak %':>7}" for k in keys)
            + f"{'guard %':>16}")
    lines = [head, "-" * len(head)]
    base = runs[0].eval.variants[BASE]
    entries = [("base", base, base[keys[0]], "–")]
    for r in runs:
        if r.eval and TUNED in r.eval.variants:
            entries.append((r.name, r.eval.variants[TUNED], r.eval.serving(keys[0]), guard_cell(r)))
    for name, icl, first, guard in entries:
        cells = "".join(f"{icl[k].norm_avg:>11.1f} ({icl[k].norm_avg - base[k].norm_avg:+6.1f})"
                        f"{_fmt_leak(icl[k].leakage):>7}" for k in keys)
        lines.append(f"{name:<{w}}{_target(first):>8}{cells}{guard:>16}")
    return lines


def _name_width(runs: list[RunView]) -> int:
    """The run-name column of the console tables: 15, or wider for longer names (`promot-replay/seed-2`)."""
    return max([15, *(len(r.name) + 1 for r in runs)])


def console_curves(runs: list[RunView]) -> list[str]:
    """The trade-off over stage-2 checkpoints, one line per run: step: target score / ICL score / leakage."""
    lines = []
    w = _name_width(runs)
    for r in runs:
        target, icl, leak = (dict(curve(r, k)) for k in ("eval_target_score", "icl_score", "icl_leakage"))
        steps = sorted(set(target) | set(icl))
        if steps:
            cells = (f"{s}: {_fmt(target.get(s))} / {_fmt(icl.get(s))} / {_fmt_leak(leak.get(s))}" for s in steps)
            lines.append(f"{r.name:<{w}} " + "  ".join(cells))
    return ["stage 2 - step: target / ICL / leakage %", *lines] if lines else []


def alignment_table(runs: list[RunView]) -> list[list[str]]:
    """Gradient alignment per run and stage-2 step: cosine(real-label, shuffled-label gradient) per module kind."""
    kinds = sorted({k[len("align_"):] for r in runs for m in r.metrics for k in m if k.startswith("align_")})
    if not kinds:
        return []
    rows = [["run", "step", *kinds]]
    for r in runs:
        per_step: dict[int, dict] = {}
        for kind in kinds:
            for step, value in curve(r, f"align_{kind}"):
                per_step.setdefault(step, {})[kind] = value
        rows += [[r.name, str(s), *(f"{v[k]:.3f}" if k in v else "–" for k in kinds)] for s, v in sorted(per_step.items())]
    return rows
