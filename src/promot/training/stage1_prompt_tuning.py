"""Stage 1 — prompt tuning. Frozen: every model weight. Trained: the soft prompt [P, H]. Selected: the prompt
with the best target-task score on validation. Returns that prompt; the model is untouched."""
from __future__ import annotations

import torch

from promot.distributed import full
from promot.prompt import PromptedLM, prompt_bos_id
from promot.rundir import STAGE1
from promot.training.loop import StageContext, run_stage


def train_prompt(model: torch.nn.Module, prompt: torch.Tensor, ctx: StageContext, resume: str | None = None,
                 name: str = STAGE1) -> tuple[torch.Tensor, dict]:
    """The selected prompt, and run.json's record of the stage."""
    model.requires_grad_(False)
    lm = PromptedLM(model, prompt, train_prompt=True, label_smoothing=ctx.cfg.stage1.label_smoothing,
                    bos_id=prompt_bos_id(ctx.tokenizer))
    result = run_stage(name, lm, ctx.cfg.stage1, ctx, resume)
    return full(lm.prompt.detach()).clone(), result.record  # FSDP2 shards the prompt too (on the root module): gather it
