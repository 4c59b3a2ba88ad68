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
