"""CLI: results equal the API's; every bad input is one clear line on stderr, exit 2, nothing written."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import make_model, run_config

from promot.cli import main
from promot.prompt import save_prompt


def _config(tmp_path, tiny_dirs, task_files, **over) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over)))
    return str(path)


def _fails(argv, capsys, expect: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("promot: error: ") and expect in err[0], err[0]


def _bad_data(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f"data.train={f}"


BAD = {
    "malformed JSONL": (lambda t: [_bad_data(t, "b.jsonl", '{"premise": "a"}\n{broken\n')], "b.jsonl:2: malformed JSON"),
    "missing field": (lambda t: [_bad_data(t, "m.jsonl", '{"premise": "a b", "label": "True"}\n')],
                      "m.jsonl:1: field 'hypothesis' is missing"),
    "empty dataset": (lambda t: [_bad_data(t, "e.jsonl", "")], "e.jsonl: dataset is empty"),
    "completion too long": (lambda t: ["data.max_length=2"], "target is 2 tokens, too long for data.max_length=2"),
    "unknown method": (lambda t: ["method=magic"], "method 'magic' is not one of"),
    "unknown key": (lambda t: ["stage2.learning_rate=1"], "did you mean 'lr'"),
    "missing model": (lambda t: [f"model.name={t / 'nope'}"], "cannot load model"),
    "missing data file": (lambda t: [f"data.train={t / 'nope.jsonl'}"], "data file not found"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_one_line_exit_2_nothing_written(case, tmp_path, tiny_dirs, task_files, capsys):
    overrides, expect = BAD[case]
    _fails(["train", _config(tmp_path, tiny_dirs, task_files), *overrides(tmp_path)], capsys, expect)
    assert not (tmp_path / "run").exists()


def test_prompt_for_another_model_or_width_is_refused(tmp_path, tiny_dirs, task_files, capsys):
    cfg = _config(tmp_path, tiny_dirs, task_files)
    save_prompt(tmp_path / "narrow", torch.randn(4, 16), make_model("llama"), "x", [])
    _fails(["train", cfg, f"prompt.from_adapter={tmp_path / 'narrow'}"], capsys, "prompt hidden size 16")
    save_prompt(tmp_path / "other", torch.randn(4, 32), make_model("llama"), "x", ["0123456789abcdef"])
    _fails(["train", cfg, f"prompt.from_adapter={tmp_path / 'other'}"], capsys, "trained for another model")
    assert not (tmp_path / "run").exists()


def test_missing_config_and_not_a_run(tmp_path, capsys):
    _fails(["train", str(tmp_path / "none.yaml")], capsys, "config file not found")
    _fails(["generate", str(tmp_path), "hello"], capsys, "not a finished promot run")


def test_existing_output_dir_is_not_clobbered(tmp_path, tiny_dirs, task_files, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    _fails(["train", _config(tmp_path, tiny_dirs, task_files)], capsys, "output directory exists")
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_train_then_generate_with_and_without_prompt(tmp_path, tiny_dirs, task_files, capsys):
    assert main(["train", _config(tmp_path, tiny_dirs, task_files)]) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["method"] == "promot"
    assert run == str(tmp_path / "run")
    for flag in ("--prompt", "--no-prompt"):
        assert main(["generate", run, "a b c question : it has a ? answer :", flag, "--max-new-tokens", "2"]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "promot", "train", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"promot: error: {tmp_path / 'missing.yaml'}: config file not found"


def test_disk_full_is_reported_as_such(monkeypatch, capsys, tmp_path):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "model"))

    monkeypatch.setattr("promot.api.train", full)
    _fails(["train", "whatever.yaml"], capsys, f"{tmp_path / 'run' / 'model'}: No space left on device")
