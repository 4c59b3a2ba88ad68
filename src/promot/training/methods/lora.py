"""Stage 2 trains a LoRA adapter (lora, promot-lora); the run keeps the adapter (lora/) and the merged model. Its
settings and their checks: promot/methods/lora.py."""
from __future__ import annotations

import warnings

from promot.training.methods.base import Tuning


class Lora(Tuning):
    name = "lora"

    def check(self, cfg, sharded):
        if sharded:
            return [f"method {cfg.method}: LoRA under {sharded} is not supported yet (use ddp: the adapter is small)"]
        return []

    def prepare(self, model, ctx):
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        set_seed(ctx.cfg.seed)  # LoRA's init draws from the RNG: the same adapter whether stage 1 ran or was resumed
        model.requires_grad_(False)
        c = ctx.cfg.lora
        lora = LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=c.target_modules,
                          task_type="SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM")
        with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question; not the user's concern
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated")
            return get_peft_model(model, lora)

    def finish(self, lm, run_dir, tokenizer, main_process):
        from promot import rundir
        from promot.training.artifacts import save_model

        if main_process:
            save_model(run_dir / rundir.LORA, lm.model, tokenizer)  # the adapter, before merging consumes it
        return lm.model.merge_and_unload()


LORA = Lora()
