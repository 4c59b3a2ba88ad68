"""What the command line prints: a fast --help that loads no heavy library, and a quiet demo/eval."""
from __future__ import annotations

import subprocess
import sys

import pytest

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
