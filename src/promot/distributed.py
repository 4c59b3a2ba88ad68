"""Multi-process runs. accelerate does all the distributed work (DDP, FSDP2, DeepSpeed ZeRO through Trainer); this
module only answers who writes the run directory, and re-launches `promot train` under `accelerate launch`."""
from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from promot.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "accelerate_configs"
PRESETS = ("ddp", "fsdp2", "zero2", "zero3")
SHARDED = ("fsdp2", "zero2", "zero3")


def _multi_process() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state():
    """accelerate's process state, only when launched with several processes (single-process runs never touch
    torch.distributed)."""
    if not _multi_process():
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def num_processes() -> int:
    state = _state()
    return 1 if state is None else state.num_processes


def process_index() -> int:
    state = _state()
    return 0 if state is None else state.process_index


def is_main_process() -> bool:
    state = _state()
    return state is None or state.is_main_process


def wait_for_everyone() -> None:
    state = _state()
    if state is not None:
        state.wait_for_everyone()


def sharding() -> str | None:
    """'fsdp' or 'deepspeed' when this process trains under a sharding accelerate config, else None."""
    if not _multi_process():
        return None
    for kind in ("fsdp", "deepspeed"):  # what `accelerate launch` tells Trainer, before any Accelerator exists
        if os.environ.get(f"ACCELERATE_USE_{kind.upper()}", "false").lower() == "true":
            return kind
    return None


def full(tensor):
    """The whole tensor behind an FSDP2 shard (collective: every process calls it); other tensors as they are."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def reshard(module) -> None:
    """Put every FSDP2 unit of `module` back in its sharded state. FSDP2 keeps the root's parameters gathered
    after a forward without backward (generation), so they are DTensor shards again only after this."""
    from torch.distributed.fsdp import FSDPModule

    for m in module.modules():
        if isinstance(m, FSDPModule):
            m.reshard()


@contextmanager
def gathered(root) -> Iterator[None]:
    """FSDP2 gathers a unit's parameters in its forward pre-hook. Code that uses the root unit's parameters outside
    its forward - PromptedLM.generate embeds the prompt and the input itself; probes wrap the same model in a
    second PromptedLM - gathers them here. Collective: every process must enter."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(root, FSDPModule):
        yield
        return
    # The root must claim its sub-units before anything runs them, or the first block to run makes itself a root
    # ("FSDP state has already been lazily initialized"). torch has no public call for this (2.13).
    root._get_fsdp_state()._lazy_init()
    root.unshard()
    try:
        yield
    finally:
        root.reshard()


def local(tensor):
    """This process's shard of an FSDP2 parameter (the tensor itself when not sharded)."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def preset_file(name: str) -> Path:
    """A shipped preset by name, or the user's own accelerate config file."""
    if name in PRESETS:
        path = PRESETS_DIR / f"{name}.yaml"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"--accelerate-config {name}: not a preset ({', '.join(PRESETS)}) nor a file")
    if name == "zero3":
        raise ConfigError("--accelerate-config zero3 is not supported yet: checkpoint selection and the prompt need "
                          "gathering from ZeRO-3 partitions; fsdp2 shards the same way and is supported")
    if name == "zero2":
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


LAUNCH_FLAGS = ("--accelerate-config", "--num-processes")


def relaunch(argv: list[str], preset: str | None, processes: int | None) -> int:
    """Run this very promot command again under `accelerate launch`, minus the launch flags; its exit code."""
    import subprocess

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in LAUNCH_FLAGS:
            skip = True
        elif not a.startswith(tuple(f + "=" for f in LAUNCH_FLAGS)):
            rest.append(a)
    return subprocess.call(launch_command(preset or "ddp", processes or 2, rest))
