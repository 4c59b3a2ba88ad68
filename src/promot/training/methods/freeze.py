"""Stage 2 trains every weight but the embeddings and the bottom blocks of each stack (method freeze): the lower
layers keep the model's general features while the upper ones learn the task. A tied LM head is the embedding
tensor, so it stays frozen too. Its settings and their checks: promot/methods/freeze.py."""
from __future__ import annotations

from torch import nn

from promot.methods.freeze import frozen_blocks
from promot.models.roles import block_stacks
from promot.training.methods.base import Tuning


class FreezeBottom(Tuning):
    name = "freeze"

    def fits(self, cfg, model):
        stacks = block_stacks(model)
        if not stacks:
            return [f"method freeze: found no stack of transformer blocks in {type(model).__name__}"]
        return [f"freeze.layers={frozen_blocks(cfg.freeze, len(s))} must be below the {len(s)} blocks of {name}"
                for name, s in stacks if frozen_blocks(cfg.freeze, len(s)) >= len(s)]

    def prepare(self, model, ctx):
        model.requires_grad_(True)
        for _, stack in block_stacks(model):
            stack[:frozen_blocks(ctx.cfg.freeze, len(stack))].requires_grad_(False)
        for module in model.modules():
            if isinstance(module, nn.Embedding):  # token and position embeddings; a tied head with them
                module.requires_grad_(False)
        return model


FREEZE = FreezeBottom()
