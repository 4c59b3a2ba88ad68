"""Checkpoint selection: which of a stage's evaluated checkpoints the run keeps, and whether its protection held.

The rule: among the checkpoints whose target score is within a tolerance of the best one's, keep the one whose
guard leakage (evaluate/guard.py) is least; ties go to the higher score, then to the earlier step. The tolerance is
the best score's own 95% interval on the validation items (Wilson's lower bound), or `guard.target_tolerance`
points. Without guard readings every checkpoint leaks alike, and the rule is the best target score, the earlier
checkpoint on ties (step 0 included).

One exception, for stages that train only the prompt (the model frozen, so a later prompt costs nothing outside the
task): while every checkpoint scores what the first did, the metric says nothing about the prompt (exact match stays
at 0 until a long answer comes out whole), so the latest is kept: the one training has moved furthest. Otherwise
stage 1 would hand stage 2 its untrained starting prompt.

It streams: the threshold (the best score's lower bound) only rises, so a checkpoint once below it never comes
back, and only the checkpoints that no other beats on both score and leakage can still be kept. Their weights are
all that is held (usually one or two snapshots), and all that a checkpoint saves for resuming.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from promot.distributed import local, reshard
from promot.prompt import PromptedLM
from promot.rundir import GuardOutcome, best_weights, candidate_weights

log = logging.getLogger(__name__)

EPS = 1e-9


def wilson_lower(share: float, n: int, z: float = 1.96) -> float:
    """Wilson's 95% lower bound of a share (0-1) seen over n items: unlike the normal interval and the item bootstrap
    (`metrics.proportion_ci`) it is not empty at 100%, it needs only the score, and it rises with the share, which
    lets selection stream."""
    p = min(max(share, 0.0), 1.0)
    if n <= 0:
        return 0.0
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def within_ceiling(base: float, leakage: float, ceiling: float) -> bool:
    """The guard's verdict: a reading (0-1) at most `ceiling` points over the starting model's holds."""
    return 100 * (leakage - base) <= ceiling + EPS


@dataclass(frozen=True)
class GuardPolicy:
    """How the guard's readings weigh in selection and when a kept checkpoint is flagged."""

    ceiling: float
    """Points (0-100) of guard leakage over the starting model's that a kept checkpoint may show unflagged."""
    items: int
    """Validation items behind one target score: the width of the best score's own interval."""
    tolerance: float | None = None
    """Points below the best target score that still compete on leakage; None: the best score's 95% interval."""

    def threshold(self, best: float) -> float:
        """The lowest target score still in the running, given the best so far (non-decreasing in `best`)."""
        if self.tolerance is not None:
            return best - self.tolerance
        return 100 * wilson_lower(best / 100, self.items)


@dataclass
class Candidate:
    step: int
    score: float
    leak: float
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


class KeepBest(TrainerCallback):
    """Remember the trainable tensors of the checkpoints selection may still keep; restore the kept one."""

    def __init__(self, lm: PromptedLM, policy: GuardPolicy | None = None, prompt_only: bool = False) -> None:
        """`prompt_only`: only the prompt trains; while the scores stay flat the latest checkpoint is kept."""
        self.lm, self.policy, self.prompt_only = lm, policy, prompt_only
        self.best_score: float | None = None
        self.scores: list[tuple[int, float]] = []
        self.leaks: dict[int, float] = {}
        """Guard leakage (0-1) by step; step 0's is the starting model's, measured whether or not step 0 is scored."""
        self.candidates: list[Candidate] = []
        self._snapshot_at_begin: int | None = None

    @property
    def flat(self) -> bool:
        """A prompt-only stage whose checkpoints all scored the same so far (more than one of them)."""
        return (self.prompt_only and self.policy is None and len(self.scores) > 1
                and all(v == self.scores[0][1] for _, v in self.scores))

    @property
    def base_leak(self) -> float | None:
        return self.leaks.get(0)

    def _threshold(self) -> float:
        assert self.best_score is not None
        return self.best_score if self.policy is None else self.policy.threshold(self.best_score)

    def _snapshot(self) -> dict[str, torch.Tensor]:
        # Under FSDP2 each process keeps its own shard: a snapshot never needs a gather.
        reshard(self.lm)
        return {n: local(p.detach()).to("cpu", copy=True) for n, p in self.lm.named_parameters() if p.requires_grad}

    def record(self, step: int, score: float, leak: float | None = None) -> None:
        """One evaluated checkpoint: the weights in `lm` now."""
        self.scores.append((step, score))
        if step == 0 and score >= 100.0 and self.lm.prompt is not None:
            log.warning("the target task is already solved at step 0 (score %.1f) with the prompt attached: this "
                        "stage can only move the format into the weights; step 0 is kept unless a later "
                        "checkpoint scores higher", score)
        if leak is not None:
            self.leaks[step] = leak
        leak = 0.0 if leak is None or self.policy is None else leak
        self.best_score = score if self.best_score is None else max(self.best_score, score)
        if self.flat:  # nothing tells the checkpoints apart: the latest replaces the rest
            self.candidates = [Candidate(step, score, leak, self._snapshot())]
            return
        floor = self._threshold() - EPS
        beaten = any(c.score >= score and c.leak <= leak for c in self.candidates)  # the earlier wins ties
        if score >= floor and not beaten:
            self.candidates = [c for c in self.candidates if not (score >= c.score and leak <= c.leak)]
            self.candidates.append(Candidate(step, score, leak, self._snapshot()))
        self.candidates = [c for c in self.candidates if c.score >= floor]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        score = (metrics or {}).get("eval_target_score")
        if score is not None:
            self.record(state.global_step, score, (metrics or {}).get("eval_guard_leakage"))

    @property
    def kept(self) -> Candidate | None:
        return min(self.candidates, key=lambda c: (c.leak, -c.score, c.step), default=None)

    @property
    def kept_step(self) -> int | None:
        return None if self.kept is None else self.kept.step

    @property
    def kept_score(self) -> float | None:
        return None if self.kept is None else self.kept.score

    def outcome(self) -> GuardOutcome | None:
        """The guard's verdict on the kept checkpoint; None without a policy or a starting reading."""
        kept = self.kept
        if self.policy is None or self.base_leak is None or kept is None or kept.step not in self.leaks:
            return None
        best_step = next(s for s, v in self.scores if v == self.best_score)
        base, leakage = self.base_leak, self.leaks[kept.step]
        return GuardOutcome(base=base, leakage=leakage, ceiling=self.policy.ceiling,
                            tolerance=round(self.best_score - self._threshold(), 4),
                            held=within_ceiling(base, leakage, self.policy.ceiling), step=kept.step,
                            best_step=best_step, best_leakage=self.leaks.get(best_step, leakage))

    # Checkpoints: the selection so far, so that a resumed stage keeps what an uninterrupted one would.
    def state(self, step: int) -> dict:
        return {"step": step, "best_score": self.best_score, "scores": self.scores, "leaks": sorted(self.leaks.items()),
                "candidates": [[c.step, c.score, c.leak] for c in self.candidates]}

    def save(self, folder: Path, step: int, shard: int | None = None) -> None:
        """The candidates' weights, but the checkpoint's own (its model files hold them)."""
        for c in self.candidates:
            if c.step != step and c.state is not None:
                save_file({k: v.contiguous() for k, v in c.state.items()}, folder / candidate_weights(c.step, shard))

    def load(self, folder: Path, state: dict, shard: int | None = None) -> None:
        at = int(state.get("step", -1))
        self.best_score = state["best_score"]
        self.scores = [(int(s), float(v)) for s, v in state["scores"]]
        self.leaks = {int(s): float(v) for s, v in state.get("leaks", [])}
        if "candidates" not in state:  # a checkpoint of an earlier promot: the best so far only
            if state.get("best_step") is None:
                return
            rows, files = [[state["best_step"], state["best_score"], 0.0]], {state["best_step"]: best_weights(shard)}
            at = state["best_step"] if state.get("best_is_checkpoint") else at
        else:
            rows = state["candidates"]
            files = {int(s): candidate_weights(int(s), shard) for s, _, _ in rows}
        self.candidates = []
        for s, score, leak in rows:
            c = Candidate(int(s), float(score), float(leak))
            if c.step == at:
                self._snapshot_at_begin = c.step  # the weights are loaded by the time training begins
            else:
                c.state = load_file(folder / files[c.step])
            self.candidates.append(c)

    def on_train_begin(self, args, state, control, **kwargs):
        for c in self.candidates:
            if c.step == self._snapshot_at_begin:
                c.state = self._snapshot()
        self._snapshot_at_begin = None

    def restore(self) -> None:
        kept = self.kept
        if kept is None or kept.state is None:
            return
        reshard(self.lm)
        params = dict(self.lm.named_parameters())
        with torch.no_grad():
            for name, value in kept.state.items():
                local(params[name]).copy_(value)


def best_note(keep: KeepBest, metric: str) -> str:
    """The stage's outcome in a few words, for its progress line or the log."""
    if keep.kept_score is None:
        return "done"
    note = f"best {metric} {keep.kept_score:.2f} at step {keep.kept_step}"
    if keep.flat:
        note += " (every checkpoint scored the same: the latest prompt kept)"
    if keep.kept_score < keep.best_score:
        best_step = next(s for s, v in keep.scores if v == keep.best_score)
        note = (f"kept {metric} {keep.kept_score:.2f} at step {keep.kept_step} over the best, "
                f"{keep.best_score:.2f} at step {best_step}, for its lower guard leakage")
    outcome = keep.outcome()
    return note if outcome is None else f"{note}; {outcome.describe()}"
