"""What the command line prints: a fast --help that loads no heavy library, and a quiet demo/eval."""
from __future__ import annotations

import subprocess
import sys

import pytest

@pytest.fixture(autouse=True)
def quiet():
    from promot import progress

    progress.set_verbose(False)  # `main(... --verbose)` sets it for the process
    yield
    progress.set_verbose(False)


HEAVY = ("torch", "transformers", "peft", "lm_eval", "matplotlib", "datasets")

_PROBE = """
import runpy, sys
sys.argv = ["promot", *sys.argv[1:]]
try:
    runpy.run_module("promot.cli", run_name="__main__")
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["demo", "--help"]])
def test_help_imports_no_heavy_library(argv):
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                         check=True).stdout
    assert "usage: promot" in out
    assert out.strip().splitlines()[-1] == "HEAVY:", out.strip().splitlines()[-1]


def test_train_tells_one_line_per_stage_unless_verbose(tmp_path, tiny_dirs, task_files, capsys, caplog):
    import logging

    import yaml
    from conftest import run_config

    from promot.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_dirs["llama"], task_files, tmp_path / "run")))
    with caplog.at_level(logging.INFO, logger="promot.progress"):
        assert main(["train", str(cfg)]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "promot.progress"]
    assert [line.split(":")[0] for line in lines] == ["run stage1", "run stage2"], lines
    assert all(" 4/4 steps in " in line and "best accuracy" in line for line in lines), lines
    got = capsys.readouterr()
    assert "{'loss'" not in got.out + got.err and "it/s" not in got.out + got.err  # Trainer's dicts and bars

    assert main(["train", str(cfg), f"output_dir={tmp_path / 'loud'}", "--verbose"]) == 0
    got = capsys.readouterr()
    assert "'loss'" in got.out + got.err  # Trainer's own output is back


class _Terminal:
    """A stderr that says it is a terminal, so tqdm draws."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_is_one_redrawn_line_on_a_terminal_and_a_log_line_elsewhere(monkeypatch, caplog):
    import io
    import logging

    from promot.progress import Progress

    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    with caplog.at_level(logging.INFO, logger="promot.progress"):
        with Progress(3, "eval base") as line:
            for i in (1, 2, 3):
                line.update_to(i)
        assert term.text.count("\n") == 1 and "eval base" in term.text and "3/3" in term.text
        assert not caplog.records  # the bar said it
        failed = Progress(3, "eval tuned")
        failed.update_to(1)
        failed.close(failed=True)
        assert term.text.count("\n") == 1  # wiped, no second line

        monkeypatch.setattr("sys.stderr", io.StringIO())  # a pipe or a log file: no redraws, one log line
        with Progress(2, "eval tuned") as line:
            line.update_to(2)
        assert sys.stderr.getvalue() == ""
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["eval tuned: 2/2 steps"]


def test_lm_eval_bars_are_silenced_unless_verbose():
    import lm_eval.api.task as task_mod

    from promot import progress

    original = task_mod.tqdm
    with progress.quiet_lm_eval():
        assert task_mod.tqdm([1, 2]).disable and task_mod.tqdm([1], disable=False).disable
    assert task_mod.tqdm is original
    progress.set_verbose(True)
    with progress.quiet_lm_eval():
        assert task_mod.tqdm is original


def test_a_stage_line_names_first_best_and_last_points_only():
    """100 evaluated steps (eval_every 2 over 200) make one short line; the whole curve stays in metrics.jsonl."""
    from promot.api import curve_ends

    scores = [{"step": s, "target_score": min(100.0, s / 1.5)} for s in range(0, 201, 2)]
    line = curve_ends(scores, "step", 150)
    assert line == "first 0:0.0, best 150:100.0, last 200:100.0 of 101 steps"
    alphas = [{"alpha": a, "target_score": 90.0} for a in (0.0, 0.5, 1.0)]
    assert curve_ends(alphas, "alpha", 0.5) == "first 0:90.0, best 0.5:90.0, last 1:90.0 of 3 alphas"


def test_a_compare_written_to_a_log_file_shows_no_library_bar(tiny_dirs, task_files, tiny_task, tmp_path):
    """stderr to a file, not a terminal, at a tiny budget: promot's own lines only. The lm-eval task reads its data
    through `datasets` (its "Generating train split" bar), the models load through transformers ("Loading weights")."""
    import os

    import yaml
    from conftest import run_config

    stage = {"steps": 2, "lr": 1e-3, "batch_size": 8, "eval_every": 2}
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "unused", stage1=stage, stage2=stage)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    log = tmp_path / "compare.log"
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")}  # a fresh cache: the split is generated
    with log.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", "promot.cli", "compare", str(tmp_path / "c.yaml"), "--methods",
                             "finetune", "--out", str(tmp_path / "out"), "--include-path", str(tiny_task), "--tasks",
                             "tiny_first", "--limit", "2", "--shots", "0", "--bootstrap", "0"],
                            stdout=f, stderr=subprocess.STDOUT, env=env, timeout=300).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "finetune stage2" in text  # promot's own lines are there
    for bar in ("it/s]", "s/it]", "%|", "Generating", "Loading weights", "Saving the dataset", "GGUF"):
        assert bar not in text, (bar, text)


def test_the_gguf_converters_bar_is_silenced_unless_verbose(monkeypatch):
    import transformers.modeling_gguf_pytorch_utils as gguf_mod

    from promot import progress

    original = gguf_mod.tqdm
    monkeypatch.setattr(progress, "_verbose", False)
    with progress.quiet_bars(("transformers.modeling_gguf_pytorch_utils",)):
        assert gguf_mod.tqdm([1]).disable
    assert gguf_mod.tqdm is original
