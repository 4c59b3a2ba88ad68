"""DDP through accelerate: `promot train --num-processes 2` (gloo, CPU) gives what one process gives with the
same global batch, in the same run-directory layout."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from promot import api
from promot.cli import main
from promot.distributed import PRESETS, PRESETS_DIR, launch_command, preset_file
from tests.conftest import run_config


def _config(tiny_dirs, task_files, out: Path, batch_size: int) -> Path:
    st = {"steps": 6, "batch_size": batch_size, "eval_every": 0, "eval_on_start": False, "save_every": 3}
    cfg = run_config(tiny_dirs["llama"], task_files, out, stage1={**st, "lr": 0.3},
                     stage2={**st, "lr": 1e-3, "optimizer": "adamw"})
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def _layout(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if "rng_state" not in p.name)


def test_ddp_two_processes_match_one_process_with_the_same_global_batch(tiny_dirs, task_files, tmp_path):
    single = api.train(_config(tiny_dirs, task_files, tmp_path / "single", batch_size=4))
    ddp = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "promot", "train", str(_config(tiny_dirs, task_files, ddp, 2)),
                           "--accelerate-config", "ddp", "--num-processes", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, [l for l in proc.stderr.splitlines() if "promot: error" in l or "Error" in l][:6]
    assert proc.stdout.count("promot stage2: best") == 1  # only the main process reports
    for part in ("model/model.safetensors", "prompt/adapter_model.safetensors"):
        a, b = load_file(single / part), load_file(ddp / part)
        for k in a:  # gradients all-reduced over two half batches: equal up to float summation order
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    base = load_file(tiny_dirs["llama"] / "model.safetensors")
    moved = load_file(single / "model/model.safetensors")
    assert any(not torch.equal(base[k], moved[k]) for k in base)  # the comparison is not of untouched weights
    losses = [[r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for run in (single, ddp)]
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=0, atol=1e-5)
    assert _layout(single) == _layout(ddp)
    assert sorted(p.name for p in (ddp / "stage2" / "checkpoint-6").glob("rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]  # every rank's RNG, so a resumed DDP run continues each stream


def test_presets_are_valid_accelerate_configs_and_the_launch_command_names_them():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {name: load_config_from_file(str(PRESETS_DIR / f"{name}.yaml")) for name in PRESETS}
    assert {n: c.distributed_type.value for n, c in kinds.items()} == \
        {"ddp": "MULTI_GPU", "fsdp2": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
    assert kinds["fsdp2"].fsdp_config["fsdp_version"] == 2
    assert kinds["fsdp2"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # gathered full-state saving
    assert kinds["zero3"].deepspeed_config["zero3_save_16bit_model"] is True
    cmd = launch_command("ddp", 4, ["train", "c.yaml"])
    assert cmd[cmd.index("--num_processes") + 1] == "4" and cmd[-3:] == ["promot.cli", "train", "c.yaml"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_sharded_presets_are_refused_without_a_gpu_instead_of_silently_running_ddp(tmp_path, capsys):
    assert main(["train", str(tmp_path / "c.yaml"), "--accelerate-config", "fsdp2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shards over CUDA GPUs and none is visible" in err
