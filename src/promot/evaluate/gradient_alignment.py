"""Gradient alignment (paper §3.3): how much of a fine-tuning step is *format* learning.

Shuffling the target task's labels across examples keeps the output format (still "True"/"False") but removes
any link to the inputs, so the gradient on shuffled labels carries format only. Its cosine similarity with the
gradient on the real labels, over the same input batches, per module of the last decoder layer(s), says how much
of the real update is format: ~1 at the start of plain fine-tuning in the paper, falling once the format is learnt.
Logged during stage 2 by `GradientAlignmentProbe` (`monitor.alignment_every`); `promot diagnose gradient-alignment`
runs a plain fine-tune with it on.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace

import torch

from promot.data import Collator, Example, Tokenizing
from promot.probe import Probe
from promot.prompt import PromptedLM

# Module kinds by parameter-name fragment, across Llama/Gemma/Qwen (q_proj, mlp), GPT-2 (c_attn: fused q/k/v)
# and T5 (SelfAttention.q, DenseReluDense).
KINDS = {
    "q": (r"q_proj", r"\.q\.", r"query"),
    "k": (r"k_proj", r"\.k\.", r"key"),
    "v": (r"v_proj", r"\.v\.", r"value"),
    "qkv": (r"c_attn",),
    "mlp": (r"\.mlp\.", r"DenseReluDense", r"feed_forward"),
}
_LAYER = re.compile(r"\.(\d+)\.")


def module_groups(model: torch.nn.Module, layers: int = 1) -> dict[str, list[torch.nn.Parameter]]:
    """Weights of the last `layers` blocks by kind (q, k, v, mlp; qkv for fused attention). Decoder blocks for T5."""
    named = [(n, p) for n, p in model.named_parameters() if p.dim() > 1 and _LAYER.search(n)]
    if any("decoder." in n for n, _ in named):
        named = [(n, p) for n, p in named if "decoder." in n]
    depth = max(int(_LAYER.search(n).group(1)) for n, _ in named)
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for n, p in named:
        if int(_LAYER.search(n).group(1)) <= depth - layers:
            continue
        for kind, patterns in KINDS.items():
            if any(re.search(pat, n) for pat in patterns):
                groups.setdefault(kind, []).append(p)
                break
    return groups


def shuffled(examples: list[Example], seed: int = 0) -> list[Example]:
    """Same inputs, targets permuted across examples: the label set (format) stays, the input→label link goes."""
    targets = [ex.target for ex in examples]
    random.Random(seed).shuffle(targets)
    return [replace(ex, target=t) for ex, t in zip(examples, targets)]


def _gradients(lm: PromptedLM, batches: list[dict], params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    total = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    for batch in batches:
        loss = lm(**batch).loss
        for acc, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                acc += g.float()
    return total


def alignment(lm: PromptedLM, real: list[dict], fake: list[dict], groups: dict[str, list]) -> dict[str, float]:
    """Cosine similarity per module kind between the summed gradients on `real` and on `fake` batches.
    Dropout is off (eval mode) so both see the same function; parameters' .grad and optimizer state are untouched."""
    was_training = lm.training
    lm.eval()
    params = [p for ps in groups.values() for p in ps]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        g_real, g_fake = _gradients(lm, real, params), _gradients(lm, fake, params)
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        lm.train(was_training)
    out, i = {}, 0
    for kind, ps in groups.items():
        a = torch.cat([g.flatten() for g in g_real[i : i + len(ps)]])
        b = torch.cat([g.flatten() for g in g_fake[i : i + len(ps)]])
        out[kind] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        i += len(ps)
    return out


def probe_batches(examples: list[Example], tokenizing: Tokenizing, pad_id: int, n_batches: int, batch_size: int,
                  seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Fixed real / shuffled-label batches over the same inputs, reused at every probe."""
    rng = random.Random(seed)
    chosen = rng.sample(examples, min(len(examples), n_batches * batch_size))
    collate = Collator(pad_id)

    def batches(exs: list[Example]) -> list[dict]:
        rows = [tokenizing.encode(ex) for ex in exs]
        return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]

    return batches(chosen), batches(shuffled(chosen, seed))


class GradientAlignmentProbe(Probe):
    """Logs `align_<kind>` (cosine, real vs shuffled labels) every N steps and at step 0 of stage 2."""

    def __init__(self, real: list[dict], fake: list[dict], every: int, layers: int = 1) -> None:
        self.real, self.fake, self.every, self.layers = real, fake, every, layers

    def measure(self) -> dict[str, float]:
        lm: PromptedLM = self.trainer.accelerator.unwrap_model(self.trainer.model)
        device = next(lm.parameters()).device
        move = lambda bs: [{k: v.to(device) for k, v in b.items()} for b in bs]  # noqa: E731
        scores = alignment(lm, move(self.real), move(self.fake), module_groups(lm.model, self.layers))
        return {f"align_{k}": v for k, v in scores.items()}
