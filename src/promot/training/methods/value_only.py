"""Stage 2 trains only the attention value projections (method value-only): on linear attention, tuning the value
matrices alone learns the task and keeps in-context learning, where tuning the queries and keys harms it. Every
other weight, embeddings and head included, stays frozen. Its settings: promot/methods/value_only.py."""
from __future__ import annotations

from promot.models.roles import fused_qkv, value_projections
from promot.training.methods.base import Tuning


class ValueOnly(Tuning):
    name = "value-only"

    def fits(self, cfg, model):
        if value_projections(model):
            return []
        fused = fused_qkv(model)
        why = f"its attention holds query, key and value in one matrix ({fused[0]})" if fused else "none was found"
        return [f"method value-only needs the attention value projections of {type(model).__name__}: {why}"]

    def prepare(self, model, ctx):
        model.requires_grad_(False)
        for projection in value_projections(model).values():
            projection.requires_grad_(True)
        return model


VALUE_ONLY = ValueOnly()
