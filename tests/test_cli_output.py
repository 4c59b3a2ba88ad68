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


def _screen(text: str) -> list[str]:
    """What a terminal shows: each line's last carriage-return segment (a tqdm bar redraws in place)."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.strip()]


def test_train_prints_one_line_per_stage_unless_verbose(tmp_path, tiny_dirs, task_files, capsys):
    import yaml
    from conftest import run_config

    from promot.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(run_config(tiny_dirs["llama"], task_files, tmp_path / "run")))
    assert main(["train", str(cfg)]) == 0
    got = capsys.readouterr()
    screen = _screen(got.out + got.err)
    bars = [s for s in screen if s.startswith("run stage")]
    assert [b.split(":")[0] for b in bars] == ["run stage1", "run stage2"], screen
    assert all("4/4" in b and "best accuracy" in b for b in bars), bars
    assert not any("{'loss'" in s or "'eval_target_score'" in s for s in screen), screen  # Trainer's log dicts
    assert len(screen) <= 8, screen

    assert main(["train", str(cfg), f"output_dir={tmp_path / 'loud'}", "--verbose"]) == 0
    got = capsys.readouterr()
    assert "'loss'" in got.out + got.err  # Trainer's own output is back


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
