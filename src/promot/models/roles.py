"""Finding a model's parts by their role, for methods that train only some of them: the stacks of transformer
blocks (bottom to top) and the attention value projections. transformers names no roles, so the blocks are found
by the class names the model declares in `_no_split_modules` (what accelerate shards by), and the value
projections by the names every architecture promot loads gives them."""
from __future__ import annotations

from torch import nn

VALUE_NAMES = frozenset({"v_proj", "v", "value", "v_lin", "value_proj"})
"""An attention module's value projection: Llama, Gemma, Qwen, Mistral, OPT (v_proj), T5 (v), BERT (value),
DistilBERT (v_lin)."""
FUSED_QKV_NAMES = frozenset({"c_attn", "qkv_proj", "query_key_value", "Wqkv", "qkv"})
"""One matrix holding query, key and value together (GPT-2, Phi-3, GPT-NeoX, MPT): no value projection of its own."""


def block_stacks(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    """Each stack of transformer blocks (a decoder: one; an encoder-decoder: the encoder's and the decoder's), by
    name, its blocks in input-to-output order. A block is a module of a class the model names in `_no_split_modules`;
    without those names, a list of two or more modules of one class (not inside another stack)."""
    declared = set(getattr(model, "_no_split_modules", None) or ())
    stacks: list[tuple[str, nn.ModuleList]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if any(name.startswith(f"{outer}.") for outer, _ in stacks):
            continue
        classes = {type(m).__name__ for m in module}
        if declared and classes <= declared or not declared and len(module) > 1 and len(classes) == 1:
            stacks.append((name, module))
    return stacks


def _is_attention(module: nn.Module) -> bool:
    return "attention" in type(module).__name__.lower()


def value_projections(model: nn.Module) -> dict[str, nn.Module]:
    """Every attention module's value projection (self- and cross-attention), by qualified name."""
    found = {}
    for parent_name, parent in model.named_modules():
        if not _is_attention(parent):
            continue
        for child_name, child in parent.named_children():
            if child_name in VALUE_NAMES and any(True for _ in child.parameters(recurse=False)):
                found[f"{parent_name}.{child_name}" if parent_name else child_name] = child
    return found


def fused_qkv(model: nn.Module) -> list[str]:
    """The qualified names of attention projections that hold query, key and value in one matrix."""
    return [f"{p}.{c}" for p, parent in model.named_modules() if _is_attention(parent)
            for c, _ in parent.named_children() if c in FUSED_QKV_NAMES]
