"""④ Evaluation. For now: target-task scoring by generation (checkpoint selection, `promot generate`)."""
from promot.evaluate.target import generate_texts, score, target_score

__all__ = ["generate_texts", "score", "target_score"]
