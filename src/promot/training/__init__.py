"""③ Training: stage 1 (prompt tuning) and stage 2 (model tuning) on one shared Trainer loop."""
from promot.training.methods import METHODS, Method

__all__ = ["METHODS", "Method"]
