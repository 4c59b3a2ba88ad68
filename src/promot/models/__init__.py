"""Models: load anything HF (hub, directory, GGUF, packaged aliases) into a plain trainable model; fingerprint it."""
from promot.models.fingerprint import fingerprint
from promot.models.loading import LoadedModel, load_model

__all__ = ["LoadedModel", "fingerprint", "load_model"]
