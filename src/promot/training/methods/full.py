"""Stage 2 trains every weight (promot, finetune, joint, random-prompt and the rivals built on them)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from promot.config import RunConfig
    from promot.prompt import PromptedLM
    from promot.training.loop import StageContext


class Tuning:
    """What stage 2 trains, and what the run keeps of it."""

    name = ""
    trains_all_weights = False

    def check(self, cfg: RunConfig, sharded: str | None) -> list[str]:
        """Problems with this kind of tuning under the run's config / sharding, as one-line messages."""
        return []

    def prepare(self, model: torch.nn.Module, ctx: StageContext) -> torch.nn.Module:
        """The model stage 2 trains, with requires_grad set on what is trained."""
        raise NotImplementedError

    def finish(self, lm: PromptedLM, run_dir: Path, tokenizer, main_process: bool) -> torch.nn.Module:
        """The plain model the run directory stores (written by the main process only)."""
        return lm.model


class FullWeights(Tuning):
    name = "full"
    trains_all_weights = True

    def prepare(self, model, ctx):
        model.requires_grad_(True)
        if ctx.cfg.stage2.freeze_embeddings:
            model.get_input_embeddings().requires_grad_(False)  # a tied LM head is the same tensor: frozen too
        return model


FULL = FullWeights()
