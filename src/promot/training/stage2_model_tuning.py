"""Stage 2 — model tuning. Attached: the prompt (stage 1's for ProMoT), frozen — no gradient, so Trainer leaves
it out of the optimizer and weight decay or Adafactor can never touch it. Trained: every model weight, or a LoRA
adapter. Selected: the checkpoint with the best target-task score (step 0 included).

The same function runs the baselines: no prompt (finetune, lora), a fresh prompt trained with the model (joint),
a fresh prompt never trained (random-prompt)."""
from __future__ import annotations

import warnings

import torch

from promot.distributed import full
from promot.prompt import PromptedLM
from promot.rundir import STAGE2
from promot.training.loop import StageContext, run_stage
from promot.training.methods import Method


def add_lora(model: torch.nn.Module, ctx: StageContext) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    c = ctx.cfg.lora
    seq2seq = bool(model.config.is_encoder_decoder)
    lora = LoraConfig(
        r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=c.target_modules,
        task_type="SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question; not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated")
        return get_peft_model(model, lora)


def train_model(
    model: torch.nn.Module, prompt: torch.Tensor | None, method: Method, ctx: StageContext, resume: str | None = None
) -> PromptedLM:
    """Returns the wrapper with the best weights restored (a PeftModel inside for LoRA methods)."""
    st = ctx.cfg.stage2
    if method.stage2 == "lora":
        from transformers import set_seed

        set_seed(ctx.cfg.seed)  # LoRA's init draws from the RNG: the same adapter whether stage 1 ran or was resumed
        model.requires_grad_(False)
        model = add_lora(model, ctx)
    else:
        model.requires_grad_(True)
        if st.freeze_embeddings:
            model.get_input_embeddings().requires_grad_(False)  # a tied LM head is the same tensor: frozen too
    lm = PromptedLM(model, prompt, train_prompt=method.prompt == "joint", label_smoothing=st.label_smoothing)
    frozen_prompt = None if lm.prompt is None or lm.prompt.requires_grad else lm.prompt.detach().clone()
    run_stage(STAGE2, lm, st, ctx, resume, callbacks=ctx.monitors)
    if frozen_prompt is not None and not torch.equal(frozen_prompt, full(lm.prompt.detach())):
        raise RuntimeError("stage 2 changed the frozen prompt")  # an invariant, not a user error
    return lm
