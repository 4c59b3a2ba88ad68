"""`promot train --resume`: a run SIGKILLed at a random step of each stage, resumed, ends exactly where an
uninterrupted run ends (weights, prompt, selection, metrics); checkpoints never look complete when they are not."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from promot import api
from promot.cli import main
from promot.errors import Interrupted
from promot.training import loop, multitask
from promot.training.resume import resume_point
from tests.conftest import run_config
from tests.resume_driver import weight_hash_score

DRIVER = Path(__file__).with_name("resume_driver.py")
STEPS = 8
STAGE = {"steps": STEPS, "batch_size": 4, "eval_every": 1, "save_every": 2}


def _config(tiny_dirs, task_files, out: Path) -> Path:
    cfg = run_config(tiny_dirs["llama"], task_files, out, stage1={**STAGE, "lr": 0.3},
                     stage2={**STAGE, "lr": 1e-3, "optimizer": "adamw", "warmup_steps": 0.25},
                     monitor={"alignment_every": 2})  # a stage-2 probe: logged once per step, resumed or not
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def _killed(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True,
                          cwd=DRIVER.parent.parent)
    assert proc.returncode == -9, proc.stderr[-3000:]


def _tensors(run: Path) -> dict:
    return {**load_file(run / "model" / "model.safetensors"),
            **{f"prompt.{k}": v for k, v in load_file(run / "prompt" / "adapter_model.safetensors").items()}}


def _curve(run: Path) -> list[dict]:
    """Every per-step log (loss, lr, grad norm, scores, alignment), not the end-of-stage timings."""
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "train_runtime" not in r and "stage_seconds" not in r]


@pytest.fixture(scope="module")
def straight(tiny_dirs, task_files, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted-and-resumed one must equal."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(multitask, "target_score", weight_hash_score)
        return api.train(_config(tiny_dirs, task_files, tmp_path_factory.mktemp("straight") / "straight"))


def _same_run(straight: Path, run: Path, where: str) -> None:
    a, b = _tensors(straight), _tensors(run)
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), f"weights differ ({where})"
    info_a, info_b = (json.loads((r / "run.json").read_text()) for r in (straight, run))
    assert info_a["stages"] == info_b["stages"], where
    assert len({s["target_score"] for s in info_a["stages"]["stage2"]["scores"]}) > 1  # selection was not trivial
    assert _curve(straight) == _curve(run), where
    logged = [r["step"] for r in _curve(straight) if r["stage"] == "stage2" and "loss" in r]
    assert logged == list(range(1, STEPS + 1))  # the probe's own log does not swallow its step's loss log
    assert sorted(p.name for p in straight.iterdir()) == sorted(p.name for p in run.iterdir())


def test_sigkill_in_each_stage_then_resume_matches_an_uninterrupted_run(straight, tiny_dirs, task_files, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(multitask, "target_score", weight_hash_score)
    kill1, kill2 = random.randint(1, STEPS - 1), random.randint(1, STEPS - 1)
    where = f"killed at stage1 step {kill1}, stage2 step {kill2}"
    run = tmp_path / "resumed"
    _killed([str(_config(tiny_dirs, task_files, run)), "stage1", str(kill1)])
    assert not (run / "stage1" / "selected.safetensors").exists() and not (run / "stage2").exists(), where
    _killed([str(run), "stage2", str(kill2), "--resume"])
    assert (run / "stage1" / "selected.safetensors").exists() and not (run / "run.json").exists(), where
    assert main(["train", "--resume", str(run)]) == 0
    _same_run(straight, run, where)


def test_sigterm_and_sigint_in_each_stage_checkpoint_the_step_then_resume_matches(straight, tiny_dirs, task_files,
                                                                                  tmp_path, monkeypatch, capsys):
    """SIGTERM in stage 1 (at an odd step: no save_every checkpoint there), SIGINT then SIGTERM in stage 2: each
    finishes its step, writes checkpoint-<step>, exits 128+signal with one line naming `--resume`; the run resumed
    three times is the uninterrupted one, bit for bit."""
    import functools
    import signal

    from tests.resume_driver import SignalAt

    monkeypatch.setattr(multitask, "target_score", weight_hash_score)
    stop1, stop2 = random.choice([1, 3, 5, 7]), random.randint(1, STEPS - 2)
    stop3 = random.randint(stop2 + 1, STEPS - 1)
    where = f"SIGTERM at stage1 step {stop1}, SIGINT at stage2 step {stop2}, SIGTERM at stage2 step {stop3}"
    run = tmp_path / "resumed"
    train = api.train
    monkeypatch.setattr(api, "train", functools.partial(train, callbacks=[SignalAt("stage1", stop1)]))
    assert main(["train", str(_config(tiny_dirs, task_files, run))]) == 128 + signal.SIGTERM, where
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"promot: {run}: stopped by SIGTERM (stage1 step {stop1}: checkpoint written); continue with "
                       f"`promot train --resume {run}`"), err
    assert (run / "stage1" / f"checkpoint-{stop1}" / "promot_state.json").is_file(), where
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the run's handlers are gone with it
    with pytest.raises(Interrupted, match="stopped by SIGINT"):
        api.resume(run, callbacks=[SignalAt("stage2", stop2, signal.SIGINT)])
    assert (run / "stage2" / f"checkpoint-{stop2}").is_dir() and not (run / "run.json").exists(), where
    with pytest.raises(Interrupted, match="stopped by SIGTERM"):
        api.resume(run, callbacks=[SignalAt("stage2", stop3, signal.SIGTERM)])
    assert (run / "stage2" / f"checkpoint-{stop3}").is_dir() and not (run / "run.json").exists(), where
    assert main(["train", "--resume", str(run)]) == 0
    _same_run(straight, run, where)


def test_resume_on_an_edited_config_names_the_keys_and_touches_nothing(tiny_dirs, task_files, tmp_path, capsys):
    st = {"steps": 2, "batch_size": 4, "eval_every": 0, "eval_on_start": False, "save_every": 1}
    run = api.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", stage1=st, stage2=st))
    (run / "run.json").unlink()  # as if it had died before the end
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["prompt"]["length"] = 6
    cfg["stage2"]["lr"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(prompt.length, stage2.lr changed)" in err, err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != "config.yaml"} == {
        p: t for p, t in before.items() if p.name != "config.yaml"}
    # A run from before fingerprints: the checkpoint itself no longer fits → one line, not torch's traceback.
    (run / "config.fingerprint.json").unlink()
    shutil.rmtree(run / "stage2")
    (run / "stage1" / "selected.safetensors").unlink()  # died in stage 1: its checkpoint-2 holds a 4-token prompt
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stage1/checkpoint-2: its weights cannot be loaded" in err, err


class SafetensorError(Exception):
    """What safetensors' writer raises on a full disk (not an OSError)."""


FULL = {"os": OSError(28, "No space left on device"),
        "safetensors": SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                       '"No space left on device" })')}


@pytest.mark.parametrize("where", ["rng", "weights"])
def test_a_full_disk_mid_checkpoint_says_so_in_one_line_and_resume_goes_on(tiny_dirs, task_files, tmp_path,
                                                                           monkeypatch, capsys, where):
    """The disk fills at stage 1's step-4 checkpoint (the RNG state, written after model and optimizer, or the
    weights, through safetensors): one line naming the checkpoint, the space free and needed, the intact last
    checkpoint and the --resume command; exit 1; only checkpoint-2 counts, nothing half-written stays."""
    from promot.training import artifacts

    target = (loop.PromotTrainer, "_save_rng_state") if where == "rng" else (artifacts, "save_model")
    original = getattr(*target)

    def fail_at_4(*args, **kwargs):
        path = str(args[1] if where == "rng" else args[0])  # (trainer, output_dir) / (directory, model, …)
        if "stage1" in path and ".staging" in path and "checkpoint-4" in path:
            raise FULL["os" if where == "rng" else "safetensors"]
        return original(*args, **kwargs)

    monkeypatch.setattr(*target, fail_at_4)
    run = tmp_path / "run"
    assert main(["train", str(_config(tiny_dirs, task_files, run))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    stage = run / "stage1"
    assert len(err) == 1, err
    assert f"{stage / 'checkpoint-4'}: no space left on the device (" in err[0] and " free there, it needs more " \
        "than " in err[0] and f"the last checkpoint, {stage / 'checkpoint-2'}, is intact" in err[0], err
    assert f"`promot train --resume {run}`" in err[0]
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoint-2"]  # no .staging left behind
    assert (stage / "checkpoint-2" / "promot_state.json").is_file()
    assert resume_point(run, "stage1") == str(stage / "checkpoint-2")
    steps = {json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()}
    assert max(steps) == 2  # what was logged after checkpoint-2 is dropped: the resumed run logs it again
    monkeypatch.setattr(*target, original)  # space freed
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "run.json").is_file()


def test_resume_refuses_a_complete_run_and_a_foreign_directory(tiny_dirs, task_files, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a promot run directory" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("{}")
    (tmp_path / "run.json").write_text("{}")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "the run is complete" in capsys.readouterr().err


def test_save_total_limit_keeps_the_newest_checkpoints(tiny_dirs, task_files, tmp_path):
    st = {"steps": 4, "batch_size": 4, "eval_every": 0, "eval_on_start": False, "save_every": 1, "save_total_limit": 2}
    run = api.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune", stage2=st))
    assert sorted(p.name for p in (run / "stage2").iterdir()) == ["checkpoint-3", "checkpoint-4"]


def test_resume_refuses_changed_training_data(tiny_dirs, task_files, tmp_path):
    import shutil

    from promot.errors import ConfigError

    data = {k: Path(shutil.copy(v, tmp_path / Path(v).name)) for k, v in task_files.items()}
    st = {"steps": 2, "batch_size": 4, "eval_every": 0, "eval_on_start": False}
    run = api.train(run_config(tiny_dirs["llama"], data, tmp_path / "run", method="finetune", stage2=st))
    (run / "run.json").unlink()  # as if it had died before the end
    original = data["train"].read_text()
    data["train"].write_text(original.replace('"True"', '"False"', 1))  # one label flipped
    with pytest.raises(ConfigError, match="the training data changed since the run started"):
        api.resume(run)
    data["train"].write_text(original)
    assert api.resume(run) == run and (run / "run.json").exists()


def test_first_loss_logged_after_a_resume_matches(tiny_dirs, task_files, tmp_path):
    """Loss is logged every 2 steps here and a checkpoint is taken every 3: the checkpoint at step 9 holds step 9's
    loss not yet logged, and the resumed run's step-10 log must average steps 9-10, as the uninterrupted run's."""
    import shutil

    st = {"steps": 20, "batch_size": 4, "eval_every": 0, "eval_on_start": False, "save_every": 3}
    run = api.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune", stage2=st))
    straight = _curve(run)
    assert [r["step"] for r in straight if "loss" in r][:3] == [2, 4, 6]  # logging_steps 2: not aligned with saves
    (run / "run.json").unlink()  # as if it had died after step 9's checkpoint
    for ckpt in (run / "stage2").glob("checkpoint-*"):
        if int(ckpt.name.split("-")[1]) > 9:
            shutil.rmtree(ckpt)
    assert api.resume(run) == run
    assert _curve(run) == straight
