"""The two shapes of a method's room, side by side: `Tuning` (what stage 2 trains and what the run keeps) and
`Addon` (what a method adds to stage 2: its data, its loss, the weights kept); every hook is a no-op unless a room
overrides it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from promot.training.loop import StageHooks

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from promot.config import RunConfig
    from promot.prompt import PromptedLM
    from promot.training.loop import StageContext


class Tuning:
    """What stage 2 trains, and what the run keeps of it."""

    name = ""
    trains_all_weights = False

    def check(self, cfg: RunConfig, sharded: str | None) -> list[str]:
        """What this kind of tuning cannot do under the run's sharding, as one-line messages (its settings' problems
        are promot/methods/<room>.py's, gathered by config.validate)."""
        return []

    def fits(self, cfg: RunConfig, model: torch.nn.Module) -> list[str]:
        """What this tuning cannot do with the loaded model (no value projection, too few blocks), as one-line
        messages: checked before anything is written."""
        return []

    def prepare(self, model: torch.nn.Module, ctx: StageContext) -> torch.nn.Module:
        """The model stage 2 trains, with requires_grad set on what is trained."""
        raise NotImplementedError

    def finish(self, lm: PromptedLM, run_dir: Path, tokenizer, main_process: bool) -> torch.nn.Module:
        """The plain model the run directory stores (written by the main process only)."""
        return lm.model


class Addon:
    """What a method adds to stage 2."""

    name = ""
    needs_whole_weights = False
    """It reads or writes every trained tensor whole, which a sharded run (FSDP2, ZeRO-3) never holds."""

    def check(self, cfg: RunConfig) -> list[str]:
        """What this add-on cannot do under the run's sharding, as one-line messages (checked before anything loads;
        its settings' problems are promot/methods/<room>.py's, gathered by config.validate)."""
        from promot.distributed import sharding

        if self.needs_whole_weights and sharding():
            return [f"method {cfg.method}: {self.name} needs whole weights; not supported under {sharding()}"]
        return []

    def fits(self, cfg: RunConfig, model: torch.nn.Module) -> list[str]:
        """What this add-on cannot do with the loaded model, as one-line messages: checked before anything is
        written."""
        return []

    def stage2_rows(self, rows: list[dict], cfg: RunConfig, tokenizer, seq2seq: bool) -> list[dict]:
        """The rows stage 2 trains on (default: the target task's, unchanged)."""
        return rows

    def before_stage2(self, lm: PromptedLM, ctx: StageContext) -> StageHooks:
        """Called with the starting weights, before the first step: what this add-on plugs into the stage (a loss,
        a penalty, state kept for `after_stage2`)."""
        return StageHooks()

    def after_stage2(self, lm: PromptedLM, ctx: StageContext, stage2: dict, hooks: StageHooks) -> dict[str, dict]:
        """Called with the selected weights restored, stage 2's run.json record and this add-on's own hooks; may
        replace the weights. Returns run.json records of its own, by stage name (none by default)."""
        return {}
