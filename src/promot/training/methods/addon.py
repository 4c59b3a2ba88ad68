"""What an add-on can change in stage 2; every hook is a no-op unless the add-on overrides it."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promot.config import RunConfig
    from promot.prompt import PromptedLM
    from promot.training.loop import StageContext


class Addon:
    name = ""
    needs_whole_weights = False
    """It reads or writes every trained tensor whole, which a sharded run (FSDP2, ZeRO-3) never holds."""

    def check(self, cfg: RunConfig) -> list[str]:
        """Config problems, as one-line messages (collected with the rest before anything loads)."""
        from promot.distributed import sharding

        if self.needs_whole_weights and sharding():
            return [f"method {cfg.method}: {self.name} needs whole weights; not supported under {sharding()}"]
        return []

    def stage2_rows(self, rows: list[dict], cfg: RunConfig, tokenizer, seq2seq: bool) -> list[dict]:
        """The rows stage 2 trains on (default: the target task's, unchanged)."""
        return rows

    def before_stage2(self, lm: PromptedLM, ctx: StageContext) -> None:
        """Called with the starting weights, before the first step."""

    def after_stage2(self, lm: PromptedLM, ctx: StageContext) -> None:
        """Called with the selected weights restored; may replace them."""
