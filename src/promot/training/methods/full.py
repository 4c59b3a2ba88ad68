"""Stage 2 trains every weight (promot, finetune, joint, random-prompt and the rivals built on them)."""
from __future__ import annotations

from promot.training.methods.base import Tuning


class FullWeights(Tuning):
    name = "full"
    trains_all_weights = True

    def prepare(self, model, ctx):
        model.requires_grad_(True)
        if ctx.cfg.stage2.freeze_embeddings:
            model.get_input_embeddings().requires_grad_(False)  # a tied LM head is the same tensor: frozen too
        return model


FULL = FullWeights()
