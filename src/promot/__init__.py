"""promot: ProMoT fine-tuning (prompt tuning, then model tuning with the prompt frozen) for Hugging Face LMs.

Pipeline: data → soft prompt → stage 1 (prompt tuning) → stage 2 (model tuning) → run directory.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "compare", "export", "generate", "load_config", "load_run", "train"]

# The package root wires in the ICL world (torch-free): its `world-tiny` alias works from any config or command.
from promot import world as _world  # noqa: E402,F401
# Bound eagerly (compare.py imports no torch at module level): once the submodule promot.compare is imported, the
# package attribute `compare` would be that module, and a second `promot.compare(...)` call would fail.
from promot.compare import compare  # noqa: E402,F401


def __getattr__(name: str):
    # Lazy: `import promot` stays cheap (no torch) until the API is used.
    if name in ("generate", "load_run", "train"):
        from promot import api

        return getattr(api, name)
    if name == "export":
        from promot.serving import export

        return export
    if name == "load_config":
        from promot.config import load_config

        return load_config
    raise AttributeError(name)
