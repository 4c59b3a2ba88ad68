"""DDP through accelerate: `promot train --num-processes 2` (gloo, CPU) gives what one process gives with the
same global batch, in the same run-directory layout."""
from __future__ import annotations

import json
import os
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
from promot.training import multitask
from tests.conftest import run_config
from tests.fsdp_cpu_driver import StepClock, scripted_score


def _config(tiny_dirs, task_files, out: Path, batch_size: int, select: bool = False, **over) -> Path:
    """6 + 6 steps of promot; selection off (the final weights are compared), or every 2 steps."""
    st = {"steps": 6, "batch_size": batch_size, "eval_every": 2 if select else 0, "eval_on_start": select,
          "save_every": 2, "optimizer": "adamw"}  # transformers' Adafactor cannot update FSDP2's DTensors
    cfg = run_config(tiny_dirs["llama"], task_files, out, stage1={**st, "lr": 0.3}, stage2={**st, "lr": 1e-3}, **over)
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def _layout(run: Path) -> list[str]:
    """The run directory's files, but not the checkpoints' per-process ones (RNG per rank; FSDP's own model and
    optimizer files; FSDP2's shards of selection's candidates)."""
    own = ("rng_state", "pytorch_model_fsdp", "optimizer.", "candidate-")
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if not p.name.startswith(own))


def _same_weights(a: Path, b: Path) -> None:
    for part in ("model/model.safetensors", "prompt/adapter_model.safetensors"):
        x, y = load_file(a / part), load_file(b / part)
        assert x.keys() == y.keys()
        for k in x:  # gradients reduced over two half batches: equal up to float summation order
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=1e-5)


def test_ddp_two_processes_match_one_process_with_the_same_global_batch(tiny_dirs, task_files, tmp_path):
    single = api.train(_config(tiny_dirs, task_files, tmp_path / "single", batch_size=4))
    ddp = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "promot", "train", str(_config(tiny_dirs, task_files, ddp, 2)),
                           "--accelerate-config", "ddp", "--num-processes", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, [l for l in proc.stderr.splitlines() if "promot: error" in l or "Error" in l][:6]
    assert proc.stdout.count("promot stage2: best") == 1  # only the main process reports
    _same_weights(single, ddp)
    base = load_file(tiny_dirs["llama"] / "model.safetensors")
    moved = load_file(single / "model/model.safetensors")
    assert any(not torch.equal(base[k], moved[k]) for k in base)  # the comparison is not of untouched weights
    losses = [[r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
              for run in (single, ddp)]
    torch.testing.assert_close(torch.tensor(losses[0]), torch.tensor(losses[1]), rtol=0, atol=1e-5)
    assert _layout(single) == _layout(ddp)
    assert sorted(p.name for p in (ddp / "stage2" / "checkpoint-6").glob("rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]  # every rank's RNG, so a resumed DDP run continues each stream


def _fsdp(args: list[str], kill_at: str | None = None) -> subprocess.CompletedProcess:
    """promot under accelerate's fsdp2 preset, 2 CPU processes, through the driver that lets FSDP run on CPU."""
    driver = Path(__file__).with_name("fsdp_cpu_driver.py")
    cmd = launch_command("ddp", 2, [])[:-2]  # accelerate launch …, minus `-m promot.cli`
    cmd[cmd.index("--config_file") + 1] = str(PRESETS_DIR / "fsdp2.yaml")
    root = driver.parent.parent  # this checkout's promot (src/), not whichever one is installed
    env = {**os.environ, "PROMOT_KILL_AT": kill_at or "", "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    return subprocess.run([*cmd, str(driver), *args], capture_output=True, text=True, env=env)


def test_fsdp2_killed_in_each_stage_and_resumed_selects_and_saves_what_one_process_does(
        tiny_dirs, task_files, tiny_task, tmp_path, monkeypatch):
    """FSDP2 on 2 CPU processes: stage 1 with the frozen model sharded, stage 2 on a fresh model, selection of an
    intermediate step from per-process shards, the specialization monitor, gathered saving; SIGKILLed in each
    stage and resumed each time."""
    monkeypatch.setattr(multitask, "target_score", scripted_score)
    monitor = {"monitor": {"tasks": ["tiny_first"], "every": 2, "limit": 4, "include_path": [str(tiny_task)]}}
    single = api.train(_config(tiny_dirs, task_files, tmp_path / "single", 4, True, **monitor), callbacks=[StepClock()])
    fsdp = tmp_path / "fsdp"
    killed = _fsdp(["train", str(_config(tiny_dirs, task_files, fsdp, 2, True, **monitor))], "stage1:5")
    assert killed.returncode != 0 and (fsdp / "stage1" / "checkpoint-4").is_dir()
    assert not (fsdp / "stage1" / "selected.safetensors").exists()
    killed = _fsdp(["train", "--resume", str(fsdp)], "stage2:5")
    assert killed.returncode != 0 and (fsdp / "stage2" / "checkpoint-4").is_dir()
    # the candidate of step 2 is not checkpoint-4's own weights: each process saved its shards of it
    assert sorted(f.name for f in (fsdp / "stage2" / "checkpoint-4").glob("candidate-*")) == \
        ["candidate-2.0.safetensors", "candidate-2.1.safetensors"]
    done = _fsdp(["train", "--resume", str(fsdp)])
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "rank0" in line][-4:]

    info_a, info_b = (json.loads((r / "run.json").read_text()) for r in (single, fsdp))
    assert info_a["stages"] == info_b["stages"]
    assert [info_b["stages"][s]["best_step"] for s in ("stage1", "stage2")] == [2, 2]
    icl = [[(r["step"], r["icl_score"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "icl_score" in r] for run in (single, fsdp)]
    assert icl[0] == icl[1] and [s for s, _ in icl[1]] == [0, 2, 4, 6]  # the monitor saw the same model, once a step
    _same_weights(single, fsdp)
    final, selected = (load_file(d / "model/model.safetensors") for d in (fsdp, fsdp / "stage2" / "checkpoint-2"))
    assert all(torch.equal(final[k], selected[k]) for k in final)  # the selected step's weights were restored
    assert any(f.name.startswith("pytorch_model_fsdp") for f in (fsdp / "stage2" / "checkpoint-6").iterdir())
    assert _layout(single) == _layout(fsdp)


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


def test_sharded_presets_are_refused_without_a_gpu_instead_of_silently_running_ddp(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", str(tmp_path / "c.yaml"), "--accelerate-config", "fsdp2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shards over CUDA GPUs and none is visible" in err


def test_what_fsdp2_cannot_do_is_refused_up_front(tiny_dirs, task_files, tmp_path, monkeypatch):
    """Adafactor (transformers') cannot step DTensors; LoRA's adapter save and merge are not sharding-aware."""
    from promot.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="stage1.optimizer: transformers' Adafactor cannot update FSDP2"):
        api.prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "run"))
    with pytest.raises(ConfigError, match="LoRA under fsdp is not supported"):
        api.prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "lora", method="lora"))
    assert not (tmp_path / "run").exists()
    # every problem of the environment table at once, in one message, before anything loads
    over = {"stage2": {"optimizer": "adafactor"}, "monitor": {"alignment_every": 5}, "report_to": ["nope"],
            "fp16": True}
    with pytest.raises(ConfigError) as e:
        api.prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "all", **over))
    text = str(e.value)
    at = [text.index(part) for part in ("fp16:", "monitor.alignment_every:", "stage1.optimizer:", "stage2.optimizer:",
                                         "report_to: 'nope'")]
    assert "\n" not in text and at == sorted(at) and not (tmp_path / "all").exists()


def test_sigterm_to_one_ddp_process_stops_every_process_at_one_step_with_a_checkpoint(tiny_dirs, task_files,
                                                                                         tmp_path):
    """Under accelerate the processes agree each step on whether any caught a signal: SIGTERM to rank 1 alone
    stops both at the same step, with one complete checkpoint (both ranks' RNG) and the `--resume` line."""
    import signal
    import time

    import psutil

    st = {"steps": 400, "batch_size": 2, "eval_every": 0, "eval_on_start": False, "save_every": 0}
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="prompt-tuning", stage1=st)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "promot", "train", str(path), "--num-processes", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    run, deadline = tmp_path / "run", time.time() + 300
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size):
        time.sleep(0.2)  # the first loss log (step 10): both ranks are training
    workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.environ().get("RANK") == "1"]
    assert len(workers) == 1, "no rank-1 worker found"
    workers[0].send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "continue with `promot train --resume" in err, err[-2000:]
    checkpoints = list((run / "stage1").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and int(checkpoints[0].name.split("-")[1]) < 400
    assert sorted(p.name for p in checkpoints[0].glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    assert (checkpoints[0] / "promot_state.json").is_file() and not (run / "run.json").exists()
