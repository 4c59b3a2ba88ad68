"""Multi-process runs. accelerate does all the distributed work (DDP, FSDP2, DeepSpeed ZeRO through Trainer); this
module only answers who writes the run directory, and re-launches `promot train` under `accelerate launch`."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from promot.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "accelerate_configs"
PRESETS = ("ddp", "fsdp2", "zero2", "zero3")
SHARDED = ("fsdp2", "zero2", "zero3")


def _state():
    """accelerate's process state, only when launched with several processes (single-process runs never touch
    torch.distributed)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def num_processes() -> int:
    state = _state()
    return 1 if state is None else state.num_processes


def is_main_process() -> bool:
    state = _state()
    return state is None or state.is_main_process


def wait_for_everyone() -> None:
    state = _state()
    if state is not None:
        state.wait_for_everyone()


def preset_file(name: str) -> Path:
    """A shipped preset by name, or the user's own accelerate config file."""
    if name in PRESETS:
        path = PRESETS_DIR / f"{name}.yaml"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"--accelerate-config {name}: not a preset ({', '.join(PRESETS)}) nor a file")
    if name in ("zero2", "zero3"):
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError(f"--accelerate-config {name} needs DeepSpeed: pip install deepspeed") from None
    if name in SHARDED:
        import torch

        if not torch.cuda.is_available():  # accelerate would quietly run plain DDP on CPU instead
            raise ConfigError(f"--accelerate-config {name} shards over CUDA GPUs and none is visible; "
                              "on CPU use ddp")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(preset: str, processes: int, promot_args: list[str]) -> list[str]:
    """`accelerate launch --config_file PRESET --num_processes N -m promot.cli <promot_args>`."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(preset_file(preset)),
            "--num_processes", str(processes), "--main_process_port", str(_free_port()),
            "-m", "promot.cli", *promot_args]
