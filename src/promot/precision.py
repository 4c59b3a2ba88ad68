"""Mixed precision that fits the machine: `bf16: auto` picks bf16 autocast only where the hardware runs it natively.

On a CPU without native bf16 (AVX2 only) bf16 autocast is emulated and ~20x slower per training step than fp32, so
`auto` falls back to fp32 there; a forced `bf16: true` on such a CPU is honoured with a warning.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_said: set[str] = set()


def _once(level: int, msg: str) -> None:
    """Log `msg` once per process: training resolves the setting per stage, evaluation per variant."""
    if msg not in _said:
        _said.add(msg)
        log.log(level, msg)


def native_bf16() -> tuple[bool, str]:
    """(does this machine run bf16 natively, in words why) for the device promot uses: CUDA if present, else CPU."""
    import torch

    if torch.cuda.is_available():
        ok = torch.cuda.is_bf16_supported()
        return ok, f"CUDA GPU {torch.cuda.get_device_name()} {'supports' if ok else 'lacks'} bf16"
    ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return ok, "CPU has native bf16 (AVX-512 bf16/AMX)" if ok else "CPU lacks native bf16 (AVX2 only: emulated, ~20x slower)"


def parse_bf16(value: bool | str) -> bool | str:
    """True, False or "auto" from a config value or a command-line string ("on", "no", ...); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"bf16 must be true, false or auto, got {value!r}")


def resolve_bf16(setting: bool | str, fp16: bool = False) -> bool:
    """Whether to use bf16 autocast for `setting` (true/false/auto) on this machine; says which and why once."""
    setting = parse_bf16(setting)
    if fp16 or setting is False:
        return False
    native, why = native_bf16()
    if setting is True:
        if not native:
            _once(logging.WARNING, f"bf16: true on a machine without native bf16 ({why}); bf16: auto would use fp32")
        return True
    _once(logging.INFO, f"precision: {'bf16 autocast' if native else 'fp32'} (bf16: auto; {why})")
    return native


def check_weights_dtype(dtype: str, trains_full_weights: bool) -> None:
    """Warn when full weights are *stored* in bf16 while trained: bf16 keeps 8 bits of mantissa, so an update
    smaller than ~1/256 of a weight rounds away (a 1e-4 step vanishes for |w| >= 0.03) and training stalls."""
    if dtype == "bfloat16" and trains_full_weights:
        _once(logging.WARNING, "model.dtype: bfloat16 trains weights stored in bf16: updates below ~1/256 of a "
              "weight round away (lr 1e-4 steps vanish for |w| >= 0.03); use float32 weights with bf16 autocast")
