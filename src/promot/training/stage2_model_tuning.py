"""Stage 2 — model tuning. Attached: the prompt (stage 1's for ProMoT), frozen — no gradient, so Trainer leaves
it out of the optimizer and weight decay or Adafactor can never touch it. Trained: what the method's room says
(`methods/full.py`: every weight; `methods/lora.py`: an adapter). Selected: the checkpoint with the best target-task
score (step 0 included); then the method's add-ons may act on the selected weights (`methods/wise_ft.py`).

The same function runs the baselines and rivals: no prompt (finetune, lora, wise-ft, replay, l2-sp), a fresh prompt
trained with the model (joint), a fresh prompt never trained (random-prompt)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from promot.distributed import full
from promot.methods import stage2_lr
from promot.prompt import PromptedLM, prompt_bos_id
from promot.rundir import STAGE2
from promot.training.loop import StageContext, run_stage
from promot.training.methods import Method


@dataclass(frozen=True)
class TunedModel:
    """Stage 2's outcome: the wrapper with the kept weights in place (a PeftModel inside for LoRA methods), run.json's
    records by stage (stage 2's, and an add-on's own: WiSE-FT's α grid), and under FSDP2 the gathered full state."""

    lm: PromptedLM
    stages: dict[str, dict]
    gathered: dict


def train_model(
    model: torch.nn.Module, prompt: torch.Tensor | None, method: Method, ctx: StageContext, resume: str | None = None
) -> TunedModel:
    """Stage 2 at the method's own lr when its section sets one (`lora.lr`, …), else at stage2.lr."""
    st = dataclasses.replace(ctx.cfg.stage2, lr=stage2_lr(ctx.cfg)[0])
    model = method.stage2.prepare(model, ctx)
    lm = PromptedLM(model, prompt, train_prompt=method.prompt == "joint", label_smoothing=st.label_smoothing,
                    bos_id=prompt_bos_id(ctx.tokenizer))
    frozen_prompt = None if lm.prompt is None or lm.prompt.requires_grad else lm.prompt.detach().clone()
    hooks = [addon.before_stage2(lm, ctx) for addon in method.addons]
    result = run_stage(STAGE2, lm, st, ctx, resume, callbacks=ctx.monitors, guarded=True, hooks=tuple(hooks))
    stages = {STAGE2: result.record}
    for addon, own in zip(method.addons, hooks):
        stages.update(addon.after_stage2(lm, ctx, result.record, own))
    if frozen_prompt is not None and not torch.equal(frozen_prompt, full(lm.prompt.detach())):
        raise RuntimeError("stage 2 changed the frozen prompt")  # an invariant, not a user error
    return TunedModel(lm, stages, result.gathered)
