"""95% intervals that account for seeds and items: a method run with several seeds, evaluated on the same test items.

A single run's interval (evaluate.metrics.paired_bootstrap) resamples the test items, so it says how sure we are of
*that run's* score — not whether the next seed reproduces it. Here every bootstrap draw resamples the seeds of each
method (with replacement) and the items of each task, and averages over the drawn seeds. The items are the same for
every seed and method (a crossed design), so one item draw serves them all, paired with the base on the same items;
drawing items afresh per seed would treat the shared test set as fresh data per seed and understate its noise. With
one seed the interval is exactly paired_bootstrap's (the same item draws, from the same RNG stream); identical seeds
give it again, up to float rounding. With three seeds the worst seed is the whole sample in 1/27 ≈ 3.7% of draws,
more than the 2.5% tail, so "ahead" on such an interval means ahead in every seed. Written here because scipy's
bootstrap resamples one level only.
"""
from __future__ import annotations

Items = dict[str, list[float]]  # task → per-item scores (0-100), the same items in the same order for every seed


def seed_bootstrap(groups: list[list[Items]], tasks: list[str], weights: list[float] | None = None,
                   base: Items | None = None, iters: int = 1000, seed: int = 0) -> list[float] | None:
    """95% interval of Σ_g weights[g] · (mean over group g's seeds of its Norm. Avg. over `tasks` − base's), where a
    seed's Norm. Avg. is the mean of its per-task means. One group, weight 1: the mean over seeds (against `base`:
    the change vs base; without: the level). Two groups, weights 1 and −1: the difference of two methods. None when
    a seed lacks per-item scores for a task, or item counts differ (an interval over fewer tasks would not be the
    interval of the reported mean)."""
    import numpy as np

    weights = weights or [1.0] * len(groups)
    seeds = [s for g in groups for s in g]
    if not tasks or not all(groups) or any(not s.get(t) for s in seeds for t in tasks):
        return None
    n = {t: len(seeds[0][t]) for t in tasks}
    if any(len(s[t]) != n[t] for s in seeds for t in tasks) or (base and any(len(base.get(t) or ()) != n[t]
                                                                             for t in tasks)):
        return None
    rng = np.random.default_rng(seed)  # item draws: paired_bootstrap's stream, task by task
    per_task = {g: [[] for _ in group] for g, group in enumerate(groups)}
    for t in tasks:
        idx = rng.integers(0, n[t], size=(iters, n[t]))
        ref = np.asarray(base[t]) if base else 0.0
        for g, group in enumerate(groups):
            for i, s in enumerate(group):
                per_task[g][i].append((np.asarray(s[t]) - ref)[idx].mean(axis=1))
    seed_rng = np.random.default_rng([seed, 1])  # seed draws: a stream of their own, so item draws stay as above
    total = np.zeros(iters)
    for g, group in enumerate(groups):
        means = np.stack([np.mean(per_task[g][i], axis=0) for i in range(len(group))])  # (seeds, iters)
        if len(group) == 1:
            drawn = means[0]
        else:
            pick = seed_rng.integers(0, len(group), size=(iters, len(group)))
            drawn = means[pick, np.arange(iters)[:, None]].mean(axis=1)
        total = total + weights[g] * drawn if g else weights[g] * drawn
    return [float(np.percentile(total, 2.5)), float(np.percentile(total, 97.5))]
