"""Models: load anything HF (hub, directory, GGUF, packaged aliases) into a plain trainable model; fingerprint it.

Exports resolve lazily (PEP 562) so that `promot.models.aliases` (which `import promot` fills) does not import torch.
"""
from __future__ import annotations

__all__ = ["LoadedModel", "fingerprint", "load_model"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(name)
    import importlib

    from promot.models.loading import LoadedModel, load_model

    _fp_module = importlib.import_module("promot.models.fingerprint")

    # Importing the submodule `fingerprint` set this package's attribute to the module: the function replaces it.
    globals().update(fingerprint=_fp_module.fingerprint, LoadedModel=LoadedModel, load_model=load_model)
    return globals()[name]
