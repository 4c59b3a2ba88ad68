"""L2-SP (method l2-sp; Li et al. 2018): stage 2's loss plus λ‖θ − θ_base‖² over the trained weights, a pull
toward the starting point instead of toward zero (weight decay). Its setting and check: promot/methods/l2_sp.py."""
from __future__ import annotations

from promot.training.loop import StageHooks
from promot.training.methods.base import Addon


class L2SPPenalty(Addon):
    name = "l2-sp"
    needs_whole_weights = True

    def before_stage2(self, lm, ctx):
        import torch

        trained = [(p, p.detach().clone()) for p in lm.model.parameters() if p.requires_grad]
        weight, accum = ctx.cfg.l2_sp.weight, ctx.cfg.stage2.grad_accum

        def penalty() -> torch.Tensor:
            # Trainer sums the loss of grad_accum micro-batches into one step: each carries its share.
            return weight / accum * sum((p.float() - p0.float()).pow(2).sum() for p, p0 in trained)

        return StageHooks(penalty=penalty)


L2SP = L2SPPenalty()
