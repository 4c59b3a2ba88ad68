"""Fingerprints of weights and tokenizers, so a prompt is never attached to a model it was not trained for."""
from __future__ import annotations

import hashlib
import json

import torch


def fingerprint(model: torch.nn.Module, tokenizer=None) -> str:
    """sha256 over every parameter/buffer (name, shape, dtype, bytes) and the tokenizer's vocabulary.

    Hashing all bytes costs ~1 s per GB on CPU: cheap next to loading, and it catches any weight change.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if tokenizer is not None:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()[:32]
