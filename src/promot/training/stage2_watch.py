"""What watches stage 2 besides its target score: the specialization monitor and gradient alignment (probes logged
as it trains), and the leakage guard that selection consults — built from a prepared run, off where the run has
nothing for them to watch. Also the trained answers' label set (what leakage is measured against) and the guard's
verdict on the saved model, for run.json."""
from __future__ import annotations

import logging

from promot import rundir
from promot.training.prepared import Prepared

log = logging.getLogger(__name__)


def monitors(p: Prepared) -> tuple:
    """Stage-2 probes, if configured: the specialization monitor (leakage measured against the run's own target
    labels) and gradient alignment (real vs shuffled labels on fixed training batches)."""
    m, out = p.cfg.monitor, []
    if m.tasks:
        from promot.evaluate.metrics import AnswerFormat
        from promot.evaluate.monitor import SpecializationMonitor

        ref = answer_format(p)
        fmt = None if ref is None else AnswerFormat(tuple(ref.labels), ref.regex)
        out.append(SpecializationMonitor(m.tasks, m.every, fmt, p.tokenizer, m.shots, m.limit, m.include_path,
                                         p.cfg.eval.batch_size, m.apply_chat_template))
    if m.alignment_every:
        from promot.evaluate.gradient_alignment import GradientAlignmentProbe, probe_batches

        real, fake = probe_batches(p.data.train, p.tokenizing, p.tokenizer.pad_token_id, m.alignment_batches,
                                   p.cfg.stage2.batch_size, p.cfg.seed)
        out.append(GradientAlignmentProbe(real, fake, m.alignment_every, m.alignment_layers))
    return tuple(out)


def leakage_guard(p: Prepared) -> tuple:
    """Stage 2's leakage guard and its selection policy, or (None, None): off, no stage 2, or a target with no format
    to watch (open-ended answers and no guard.format_regex)."""
    from promot.evaluate.guard import LeakageGuard
    from promot.evaluate.metrics import AnswerFormat
    from promot.precision import resolve_bf16
    from promot.training.selection import GuardPolicy

    g, cfg = p.cfg.guard, p.cfg
    if p.guard_requests is None or not p.method.stage2:
        return None, None
    ref = answer_format(p)
    if g.format_regex is None and ref is None:
        log.info("leakage guard off: the target's answers are open-ended (set guard.format_regex to watch them)")
        return None, None
    fmt = AnswerFormat(regex=g.format_regex) if g.format_regex else AnswerFormat(tuple(ref.labels), ref.regex)
    chat = p.data.chat
    budget = g.max_new_tokens or max([cfg.eval.max_new_tokens, *(t.max_new_tokens or 0 for t in cfg.tasks)])
    guard = LeakageGuard(p.guard_requests, fmt, p.tokenizer, cfg.data.max_length, chat, budget,
                         cfg.eval.batch_size, resolve_bf16(cfg.bf16, cfg.fp16), bool(p.model.config.is_encoder_decoder))
    items = sum(len(t.validation[: cfg.eval.limit] if cfg.eval.limit else t.validation) for t in p.tasks)
    return guard, GuardPolicy(float(g.ceiling), items, g.target_tolerance)


def guard_outcome(history: dict) -> rundir.GuardOutcome | None:
    """The guard's verdict on the model the run saves: WiSE-FT's kept interpolation, else stage 2's checkpoint."""
    found = history.get(rundir.WISE_FT, {}).get("guard") or history.get(rundir.STAGE2, {}).get("guard")
    return None if found is None else rundir.GuardOutcome(**found)


def answer_format(p: Prepared) -> rundir.AnswerFormatRef | None:
    """The trained answers' label set (≤ 20 values; None for open-ended targets): what leakage is measured against.
    A conversation's trained assistant turns count, not only its final one."""
    from promot.data import answer_texts
    from promot.evaluate.metrics import AnswerFormat

    fmt = AnswerFormat.from_targets(answer_texts(p.data.train, p.cfg.data.train_on))
    return None if fmt is None else rundir.AnswerFormatRef(fmt.labels, fmt.regex)

