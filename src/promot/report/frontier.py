"""The forgetting frontier: target score (x) against ICL Norm.Avg without the prompt (y) — which way of fine-tuning
keeps most of the model's other abilities at the target score. Per run: its stage-2 checkpoints, WiSE-FT α grid and
evaluated point; per method (its seeds from `promot compare --seeds`; any other run is a method with one seed): the
mean over seeds with 95% intervals over seeds and items (report/seeds.py), so "ahead" survives another seed. The
headline and the table ask every method the same question, whatever its number of seeds. Pure: no matplotlib
(plots.py draws it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from promot.report.points import FinalPoint, final_point
from promot.report.seeds import Items, seed_bootstrap
from promot.eval_record import BASE, TUNED, VariantSummary
from promot.report.tables import FLAG, RunView, _num, flagged, guard_cell, shot_keys, tradeoff
from promot.rundir import WISE_FT, seed_of

REFERENCE = "finetune"
"""The method every other is contrasted with in the seed table (when it was run)."""


@dataclass
class FrontierRun:
    run: RunView
    checkpoints: list[tuple[int, float, float]]  # stage 2: (step, target score, ICL score), from `tradeoff`
    alphas: list[tuple[float, float, float]]  # WiSE-FT: (α, target score, ICL score), α ascending
    best_alpha: float | None
    final: FinalPoint | None  # eval.json at the first shot count; None without eval.json or target tasks

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def method(self) -> str:
        return self.run.method


@dataclass
class MethodSeeds:
    """One method over its seeds (runs `<name>/seed-<s>`; a run outside that layout is a group of one): the mean
    point over the seeds that have one, its 95% intervals over seeds and items, and its change vs base."""

    name: str
    runs: list[FrontierRun]
    final: FinalPoint | None  # one seed: that run's own point (item intervals); several: means, seed-and-item CIs
    delta: float | None = None  # ICL Norm.Avg − base's, mean over seeds
    delta_ci: list[float] | None = None
    icl_tasks: list[str] = field(default_factory=list)
    icl_items: list[Items] = field(default_factory=list)  # per seed with a final point: the ICL tasks' item scores

    @property
    def method(self) -> str:
        return self.runs[0].method

    @property
    def seeds(self) -> list[FrontierRun]:
        """The runs with an evaluated point."""
        return [f for f in self.runs if f.final]

    @property
    def label(self) -> str:
        return self.name if self.name == self.method else f"{self.name} ({self.method})"


@dataclass
class Frontier:
    k: str | None  # the shot key of the final points ("k=1"); None when no run has eval.json
    base: FinalPoint | None
    runs: list[FrontierRun]
    methods: list[MethodSeeds] = field(default_factory=list)  # the runs grouped by method (RunView.group)

    @property
    def seeded(self) -> bool:
        """Whether some method was run with several seeds: then the analysis is per method, over seeds."""
        return any(len(m.runs) > 1 for m in self.methods)


def alpha_curve(run: RunView) -> list[tuple[float, float, float]]:
    """WiSE-FT's α grid from metrics.jsonl: (α, target score, ICL score) where both were measured, α ascending."""
    rows = [m for m in run.metrics if m.get("stage") == WISE_FT and "alpha" in m]
    return sorted((m["alpha"], m["eval_target_score"], m["icl_score"]) for m in rows
                  if "eval_target_score" in m and "icl_score" in m)


def frontier_points(runs: list[RunView]) -> Frontier:
    """Per run: its stage-2 checkpoint curve, its WiSE-FT α curve and its final evaluated point (first shot count),
    plus the base model's point (from the first run with eval.json). Pure: no matplotlib."""
    keys = shot_keys(runs)
    k = keys[0] if keys else None
    base = None
    out = []
    for r in runs:
        final = None
        if k is not None and r.eval and (tuned := r.eval.summary(TUNED, k)):
            final = final_point(r.eval.serving(k), tuned)
        if base is None and k is not None and r.eval and (b := r.eval.summary(BASE, k)):
            base = final_point(b, b)
        best_alpha = r.info.stages.get(WISE_FT, {}).get("best_alpha")
        out.append(FrontierRun(r, tradeoff(r), alpha_curve(r), best_alpha, final))
    groups: dict[Path, list[FrontierRun]] = {}  # a method's seeds share their folder; any other run is its own
    for f in out:
        groups.setdefault(f.run.path.parent if seed_of(f.run.path) is not None else f.run.path, []).append(f)
    return Frontier(k, base, out, [method_seeds(g[0].run.group, g, k) for g in groups.values()])


def _summaries(f: FrontierRun, k: str) -> tuple[VariantSummary, VariantSummary, VariantSummary]:
    """(serving variant, tuned variant, base) eval.json summaries of one evaluated run at k shots."""
    ev = f.run.eval
    return ev.serving(k), ev.summary(TUNED, k), ev.summary(BASE, k)


def method_seeds(name: str, runs: list[FrontierRun], k: str | None) -> MethodSeeds:
    """A method's runs (one per seed) → its MethodSeeds: means over the seeds with a final point, and intervals from
    the hierarchical bootstrap (seeds, then the same items for every seed; paired with the base for the change)."""
    done = [f for f in runs if f.final]
    if not done or k is None:
        return MethodSeeds(name, runs, None)
    parts = [_summaries(f, k) for f in done]
    tasks = parts[0][1].icl_tasks
    icl_items = [t.items for _, t, _ in parts]
    base = parts[0][2]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    icl = mean([f.final.icl for f in done])
    delta_ci = seed_bootstrap([icl_items], tasks, base=base.items)
    if len(done) == 1:
        final = done[0].final
    else:
        targets = list(parts[0][0].target_tasks)
        hits = [t.leak_hits for _, t, _ in parts]
        leaks = [f.final.leakage for f in done]
        final = FinalPoint(
            mean([f.final.target for f in done]), seed_bootstrap([[s.items for s, _, _ in parts]], targets),
            icl, seed_bootstrap([icl_items], tasks), None if None in leaks else mean(leaks),
            None if any(h is None for h in hits) else seed_bootstrap([[{"leak": list(map(float, h))} for h in hits]],
                                                                     ["leak"]))
    return MethodSeeds(name, runs, final, icl - base.norm_avg, delta_ci, tasks, icl_items)


def method_contrast(a: MethodSeeds, b: MethodSeeds) -> tuple[float, list[float] | None] | None:
    """a − b in mean ICL Norm.Avg (no prompt) with its 95% interval over both methods' seeds and the shared items;
    None when either has no evaluated point."""
    if not (a.final and b.final):
        return None
    tasks = a.icl_tasks if a.icl_tasks == b.icl_tasks else []
    return a.final.icl - b.final.icl, seed_bootstrap([a.icl_items, b.icl_items], tasks, [1.0, -1.0])


def _val(x: float, ci: list[float] | None, scale: float = 1.0) -> str:
    """An absolute level with its interval: 50.0 [45.0, 55.0] (0-100 scale)."""
    return f"{x * scale:.1f}" + (f" [{ci[0] * scale:.1f}, {ci[1] * scale:.1f}]" if ci else "")


SEED_CI = "95% CI over seeds and items"


def _reaches(p: FinalPoint, best: float) -> bool:
    """Whether a final point's target score, or its 95% CI's upper end, reaches `best`."""
    return (p.target_ci[1] if p.target_ci else p.target) >= best - 1e-9


def seeds_reaching(m: MethodSeeds, best: float) -> int:
    """How many of a method's evaluated seeds reach `best` on their own (their target's item interval)."""
    return sum(_reaches(f.final, best) for f in m.seeds)


def within_best(front: Frontier) -> dict[str, bool]:
    """method group → whether it reaches the best (mean) target score: its mean's 95% CI (seeds and items) does, and
    so does every seed's own item interval — with three seeds the mean's interval reaches 100 as soon as one seed
    does, and a method that learned the task in one seed of three keeps ICL partly by not learning it. The best
    method itself always counts. A run outside the seed layout is a method with one seed: its target's 95% CI."""
    finals = [m for m in front.methods if m.final]
    if not finals:
        return {}
    top = max(finals, key=lambda m: m.final.target)
    best = top.final.target
    return {m.name: m is top or (_reaches(m.final, best) and seeds_reaching(m, best) == len(m.seeds))
            for m in finals}


def _contenders(front: Frontier, within: dict[str, bool]) -> tuple[list, MethodSeeds, list]:
    """(the methods with a final point, the best target score's, those reaching it ranked by ICL Norm.Avg, most
    first) — what the headline names."""
    finals = [m for m in front.methods if m.final]
    best = max(finals, key=lambda m: m.final.target)
    return finals, best, sorted((m for m in finals if within[m.name]), key=lambda m: -m.final.icl)


def _falls_short(front: Frontier, within: dict[str, bool], win: MethodSeeds, best: float) -> str:
    """The clause naming the one that keeps more ICL than the winner but misses the target ('' when none does); over
    several seeds, also how many of its seeds reached that target on their own."""
    missed = [m for m in front.methods if m.final and not within[m.name] and m.final.icl > win.final.icl]
    if not missed:
        return ""
    m = max(missed, key=lambda x: x.final.icl)
    seeds = (f" (its seeds reach {_val(best, None)} in {seeds_reaching(m, best)} of {len(m.seeds)})"
             if front.seeded else "")
    return (f"; `{m.label}` keeps more ({_val(m.final.icl, m.final.icl_ci)}) but its {_words(front)['target']} "
            f"{_val(m.final.target, m.final.target_ci)} falls short{seeds}")


def _words(front: Frontier) -> dict[str, str]:
    """The headline's words: over seeds, means of methods with seed-and-item intervals; else runs (one seed each)."""
    if front.seeded:
        return {"target": "mean target score", "icl": "mean ICL Norm.Avg", "ci": f"; {SEED_CI}",
                "reaching": "methods that reach the best mean target score", "only": "", "other": "method"}
    return {"target": "target score", "icl": "ICL Norm.Avg", "ci": "", "only": " within its 95% CI",
            "reaching": "runs whose target score's 95% CI reaches the best", "other": "run"}


def _named(win: MethodSeeds) -> str:
    """The winner, never named without its flag."""
    flags = sum(flagged(f.run) for f in win.runs)
    if not flags:
        return f"`{win.label}`"
    if len(win.runs) == 1:
        return f"`{win.label}` ({FLAG})"
    return (f"`{win.label}` (flagged in {flags} of {len(win.runs)} seeds: its leakage guard says the protection "
            "did not hold)")


def _verdict(win: MethodSeeds, second: MethodSeeds) -> str:
    """Ahead only when the 95% interval of the difference (seeds and the shared items, paired) excludes 0."""
    if round(win.final.icl, 1) == round(second.final.icl, 1):
        return "tied"
    diff = method_contrast(win, second)
    if not (diff and diff[1]):
        return "ahead in the mean, no intervals recorded"
    shown = f"difference {_num(diff[0])} [{_num(diff[1][0])}, {_num(diff[1][1])}]"
    return f"ahead beyond CI ({shown})" if diff[1][0] > 0 else f"not ahead beyond CI: the {shown} includes 0"


def frontier_headline(runs: list[RunView], front: Frontier | None = None) -> str | None:
    """One sentence: among the methods that reach the best (mean) target score (`within_best`), which keeps the most
    ICL Norm.Avg (no prompt), with its interval, the runner-up with its, and whether the 95% interval of their
    difference excludes 0 — only then is it "ahead". One seed is the same question with item intervals. A method
    that keeps more but misses the target is named as excluded. None when no run has a final point."""
    front = front or frontier_points(runs)
    within = within_best(front)
    if not within:
        return None
    w = _words(front)
    finals, best, ranked = _contenders(front, within)
    win = ranked[0]
    seeds = f" over {_seeds_note(win)}" if front.seeded else ""
    icl = f"{w['icl']} {_val(win.final.icl, win.final.icl_ci)}{seeds} ({front.k[2:]}-shot, no prompt{w['ci']})"
    if len(finals) == 1:
        sentence = (f"{_named(win)} reaches a {w['target']} of {_val(win.final.target, win.final.target_ci)} and "
                    f"keeps {icl}; no other evaluated {w['other']} to compare")
    elif len(ranked) == 1:
        sentence = (f"Only {_named(win)} reaches the best {w['target']} "
                    f"({_val(win.final.target, win.final.target_ci)}){w['only']}; it keeps {icl}")
    else:
        second = ranked[1]
        sentence = (f"Of the {len(ranked)} {w['reaching']} ({_val(best.final.target, best.final.target_ci)}, "
                    f"`{best.label}`), {_named(win)} keeps the most: {icl}, vs "
                    f"{_val(second.final.icl, second.final.icl_ci)} for `{second.label}` — {_verdict(win, second)}")
    return sentence + _falls_short(front, within, win, best.final.target) + "."


def _seeds_note(m: MethodSeeds) -> str:
    n = len(m.seeds)
    return f"{n} seed{'s' if n != 1 else ''}"


def matched_table(runs: list[RunView], front: Frontier | None = None) -> list[list[str]]:
    """The matched-target-score table: base, then one row per method (a run outside the seed layout: a method with
    one seed) sorted by mean ICL Norm.Avg (no prompt) — seeds, target score, ICL Norm.Avg (and each seed's, over
    several), the change vs base, the difference from plain fine-tuning (when run), leakage, the guard, and whether
    it reaches the best target; 95% CIs over seeds and items."""
    front = front or frontier_points(runs)
    within = within_best(front)
    if not within:
        return []
    best = max(m.final.target for m in front.methods if m.final)
    ref = next((m for m in front.methods if m.name == REFERENCE and m.final), None)
    per_seed = front.seeded
    rows = [["method", "seeds", "target score [95% CI]", "ICL Norm.Avg, no prompt [95% CI]",
             *(["ICL per seed"] if per_seed else []), "Δ vs base [95% CI]",
             *([f"− {REFERENCE} [95% CI]"] if ref else []), "leakage %, no prompt",
             "guard leakage % per seed" if per_seed else "guard leakage %",
             "within CI of best target"]]
    leak = lambda p: "–" if p.leakage is None else _val(p.leakage, p.leakage_ci, 100)  # noqa: E731
    if front.base:
        b = front.base
        rows.append(["base", "–", _val(b.target, b.target_ci), _val(b.icl, b.icl_ci), *(["–"] if per_seed else []),
                     "–", *(["–"] if ref else []), leak(b), "–", "–"])
    for m in sorted((m for m in front.methods if m.final), key=lambda m: -m.final.icl):
        p = m.final
        delta = "–" if m.delta is None else _num(m.delta) + fmt_interval(m.delta_ci)
        cells = [m.label, str(len(m.seeds)), _val(p.target, p.target_ci), _val(p.icl, p.icl_ci),
                 *([" / ".join(f"{f.final.icl:.1f}" for f in m.seeds)] if per_seed else []), delta]
        if ref:
            c = None if m is ref else method_contrast(m, ref)
            cells.append("–" if c is None else _num(c[0]) + fmt_interval(c[1]))
        reached = seeds_reaching(m, best)
        rows.append([*cells, leak(p), " / ".join(guard_cell(f.run) for f in m.seeds), "yes" if within[m.name] else
                     "no" if reached == len(m.seeds) or len(m.seeds) == 1 else
                     f"no ({reached} of {len(m.seeds)} seeds)"])
    return rows


def console_frontier(runs: list[RunView]) -> list[str]:
    """The frontier headline and the matched-target-score table as fixed-width text ([] without eval.json)."""
    front = frontier_points(runs)
    rows = matched_table(runs, front)
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    return [frontier_headline(runs, front).replace("`", ""), lines[0], "-" * len(lines[0]), *lines[1:]]


def console_comparison(paths: list[Path]) -> list[str]:
    """What `promot compare` / `demo` print: the monitor's curves, the score table, the frontier's headline and
    table."""
    from promot.report.tables import console_curves, console_summary, load_runs

    views = load_runs(paths)
    return [*console_curves(views), "", *console_summary(views), "", *console_frontier(views)]


def fmt_interval(ci: list[float] | None) -> str:
    """" [−1.0, +2.0]" for a signed interval, or nothing."""
    return f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
