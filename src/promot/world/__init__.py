"""The ICL world: a tiny pretrained model, its tasks and eval suite, and the demo. An application of the library:
importing it registers the shipped model's alias, `world-tiny` (`import promot` does)."""
from __future__ import annotations

from pathlib import Path

from promot.models.aliases import register_local

TINY_MODEL = Path(__file__).resolve().parent / "assets" / "world-tiny"
"""The ICL world's shipped model: a plain HF directory inside the package."""

register_local("world-tiny", lambda: TINY_MODEL)
