"""Stage 1 done once: methods compared side by side (`promot compare`, `promot demo`, inside `sharing()`) that start
with the same prompt tuning — prompt-tuning, promot, promot-replay, promot-lora, promot-wise-ft on one config and
seed — share its outcome instead of training the same prompt again.

Same outcome means same inputs: the key hashes the starting prompt and model (their bytes), the training rows and
validation examples stage 1 sees, and every config value it reads (prompt, stage1, eval, model, data, seed,
precision). A run that reuses gets the selected prompt, the selection record and stage 1's metrics.jsonl lines,
exactly as if it had trained them; stage 2 is unaffected (its Trainer seeds the RNGs itself). Kept in memory, in
`promot.shared_work`'s scope, so nothing outlives `sharing()`; off under several processes and with a user's
callbacks (they would miss stage 1's events).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from promot.rundir import METRICS
from promot.shared_work import shared

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage1Outcome:
    prompt: torch.Tensor
    history: dict
    rows: tuple[dict, ...]
    """Stage 1's metrics.jsonl rows, as written (without their stage name)."""
    run_dir: Path


def _done() -> dict[str, Stage1Outcome] | None:
    """Outcomes by key while `sharing()` is on; None: every run trains its own stage 1."""
    return shared("stage1")


def stage1_key(model: torch.nn.Module, prompt: torch.Tensor, ctx, name: str) -> str | None:
    """What stage 1's outcome depends on, hashed; None when it must not be shared."""
    from promot.distributed import num_processes
    from promot.models.fingerprint import fingerprint

    if _done() is None or num_processes() > 1 or ctx.callbacks:
        return None
    cfg = ctx.cfg
    h = hashlib.sha256()
    h.update(json.dumps([name, cfg.seed, cfg.bf16, cfg.fp16, *(dataclasses.asdict(s) for s in (
        cfg.prompt, cfg.stage1, cfg.eval, cfg.model, cfg.data))], sort_keys=True, default=str).encode())
    h.update(prompt.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(fingerprint(model, ctx.tokenizer).encode())
    h.update(json.dumps(ctx.train_rows, sort_keys=True, default=str).encode())
    h.update(json.dumps([[ex.input, ex.target] for ex in ctx.validation]).encode())
    h.update(json.dumps([[t.name, t.index, t.metric, t.max_new_tokens, [[ex.input, ex.target] for ex in t.validation]]
                         for t in ctx.targets]).encode())
    return h.hexdigest()


def remember(key: str | None, prompt: torch.Tensor, record: dict, ctx, name: str) -> None:
    done = _done()
    if key is None or done is None:
        return
    path = ctx.run_dir / METRICS
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    mine = tuple({k: v for k, v in r.items() if k != "stage"} for r in rows if r.get("stage") == name)
    done[key] = Stage1Outcome(prompt.detach().clone(), json.loads(json.dumps(record)), mine, ctx.run_dir)


def reuse(key: str | None, ctx, name: str) -> tuple[torch.Tensor, dict] | None:
    """The shared outcome (prompt, run.json record), its metrics lines written to this run's metrics.jsonl; or
    None."""
    done = (_done() or {}).get(key) if key else None
    if done is None:
        return None
    from promot.training.loop import MetricsLog

    log.info("%s: the same stage 1 as %s's; its selected prompt reused", name, done.run_dir.name)
    metrics = MetricsLog(ctx.run_dir, name)
    for row in done.rows:
        metrics.append(row)
    return done.prompt.clone(), json.loads(json.dumps(done.history))
