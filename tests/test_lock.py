"""One writer per run directory: a second train/eval/resume of a directory a live process writes exits 2 at once
with one line naming the holder; a holder killed with SIGKILL leaves a lock the next run takes over; `overwrite`
never deletes a directory a live run holds."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from promot import rundir
from promot.cli import main
from promot.lock import run_lock
from tests.conftest import run_config

HOLD = "import sys, time; from promot.lock import run_lock\nwith run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)"


def _holder(run: Path) -> subprocess.Popen:
    """Another process holding RUN's lock (as a live `promot train` does), until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _config(tiny_dirs, task_files, run: Path, **over) -> Path:
    st = {"steps": 1, "batch_size": 4, "eval_every": 0, "eval_on_start": False}
    cfg = run_config(tiny_dirs["llama"], task_files, run, **{"method": "prompt-tuning", "stage1": st, "overwrite": True,
                                                             **over})
    path = run.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_second_writer_is_refused_at_once_and_a_killed_holders_lock_is_taken_over(tiny_dirs, task_files, tmp_path,
                                                                                 capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("the live run's")
    (run / rundir.CONFIG_FINGERPRINT).write_text("{}")  # an earlier run's folder: overwrite may replace it
    cfg = _config(tiny_dirs, task_files, run)
    holder = _holder(run)
    try:
        t0 = time.time()
        assert main(["train", str(cfg)]) == 2  # overwrite: true, yet the live holder's directory is kept
        err = capsys.readouterr().err.strip()
        assert time.time() - t0 < 5, "refused at once, not after loading the model"
        assert len(err.splitlines()) == 1 and f"pid {holder.pid} on {socket.gethostname()}" in err, err
        assert (run / "keep.txt").read_text() == "the live run's"
        (run / "config.yaml").write_text("{}")
        assert main(["train", "--resume", str(run)]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9: no chance to release anything
        holder.wait()
    assert f"pid {holder.pid}" in rundir.lock_path(run).read_text()  # the dead holder's record is still there
    assert main(["train", str(cfg)]) == 0  # ... and its lock is taken over
    assert (run / "run.json").is_file() and not (run / "keep.txt").exists()
    assert rundir.lock_path(run).read_text() == ""  # released: nobody holds it


def test_two_real_trainings_on_one_directory_one_runs_the_other_exits_2(tiny_dirs, task_files, tmp_path, capsys):
    """A live `promot train` (its own process) holds the directory; a second one with overwrite: true is refused and
    the first one's run is whole: one run's metrics, not two interleaved."""
    run = tmp_path / "run"
    long = {"steps": 400, "batch_size": 4, "eval_every": 0, "eval_on_start": False, "save_every": 0}
    first = _config(tiny_dirs, task_files, run, stage1=long)
    proc = subprocess.Popen([sys.executable, "-m", "promot", "train", str(first)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    try:
        deadline = time.time() + 120
        while not (run / "config.yaml").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (run / "config.yaml").exists(), "the first run never started"
        assert main(["train", str(_config(tiny_dirs, task_files, tmp_path / "run"))]) == 2
        assert f"pid {proc.pid}" in capsys.readouterr().err
        assert (run / "config.yaml").exists()  # not deleted under the live run
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(["train", str(_config(tiny_dirs, task_files, run))]) == 0
    steps = [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 1  # this run's lines only


def test_eval_of_a_directory_another_process_writes_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"method": "promot", "base_model": {"source": "nowhere"}}))
    holder = _holder(run)
    try:
        assert main(["eval", str(run), "--shots", "0", "--bootstrap", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err
        assert not (run / "eval.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_lock_is_reentrant_in_one_process_and_names_one_directory_however_spelled(tmp_path):
    run = tmp_path / "run"
    with run_lock(run) as a, run_lock(f"{run}/") as b, run_lock(tmp_path / "." / "run") as c:
        assert a == b == c == tmp_path / ".run.lock"
        assert f"pid {os.getpid()}" in a.read_text()
    assert a.read_text() == "" and not run.exists()  # the lock lives beside the directory, never creates it
