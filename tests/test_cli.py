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
    "override without =": (lambda t: ["stage2.lr"], "must look like key.sub=value"),
    "unknown section": (lambda t: ["stage3.lr=1"], "unknown config key 'stage3'"),
    "non-numeric lr": (lambda t: ["stage2.lr=fast"], "stage2.lr must be a finite number"),
    "negative steps": (lambda t: ["stage1.steps=-3"], "stage1.steps must be a positive integer"),
    "zero batch": (lambda t: ["stage2.batch_size=0"], "stage2.batch_size must be a positive integer"),
    "bad warmup": (lambda t: ["stage2.warmup_steps=1.5"], "stage2.warmup_steps must be a step count"),
    "negative warmup": (lambda t: ["stage2.warmup_steps=-3"], "stage2.warmup_steps must be a step count"),
    "bad optimizer": (lambda t: ["stage2.optimizer=sgdx"], "stage2.optimizer 'sgdx' is not one of"),
    "bad lr_scheduler": (lambda t: ["stage2.lr_scheduler=cosin"], "stage2.lr_scheduler 'cosin' is not one of"),
    "bad lora.target_modules": (lambda t: ["method=lora", "lora.target_modules=all_linear"],
                                "lora.target_modules must be a list of module names or 'all-linear'"),
    "bad prompt init": (lambda t: ["prompt.init=zeros"], "prompt.init 'zeros' is not one of"),
    "text init without text": (lambda t: ["prompt.init=text"], "needs prompt.init_text"),
    "zero prompt length": (lambda t: ["prompt.length=0"], "prompt.length must be a positive integer"),
    "bad truncation": (lambda t: ["data.truncation=middle"], "data.truncation 'middle' is not one of left, error"),
    "bad metric": (lambda t: ["eval.metric=f1x"], "eval.metric 'f1x' is not one of"),
    "bad dtype": (lambda t: ["model.dtype=int8"], "model.dtype 'int8' is not one of float32, bfloat16, float16"),
    "label smoothing 1": (lambda t: ["stage2.label_smoothing=1.0"], "label_smoothing must be in [0, 1)"),
    "bad mixing": (lambda t: ["mixing=random"], "mixing 'random' is not one of"),
    "missing prompt adapter": (lambda t: [f"prompt.from_adapter={t / 'nope'}"], "not a PEFT adapter"),
    "init_from not a run": (lambda t: [f"model.init_from={t}"], "not a finished promot run"),
    "negative monitor.alignment_every": (lambda t: ["monitor.alignment_every=-1"], "monitor.alignment_every"),
    "tasks not a list": (lambda t: ["tasks=3"], "tasks: expected a list of tasks"),
    "packing": (lambda t: ["data.packing=true"], "data.packing is refused"),
    "bf16 and fp16": (lambda t: ["bf16=true", "fp16=true"], "bf16 and fp16 are alternatives"),
    "fp16 without a GPU": (lambda t: ["fp16=true"], "needs a CUDA GPU"),
    "template in braces (a literal, not a YAML mapping)": (lambda t: ["data.template={question}"],
                                                          "field 'question' is missing"),
    "absurd prompt length": (lambda t: ["prompt.length=100000"], "prompt.length must be at most 4096"),
    "prompt longer than the model's positions": (lambda t: ["prompt.length=250"],
                                                 "exceeds the model's 256 positions"),
    "report_to not installed": (lambda t: ["report_to=[wandb]"], "report_to: 'wandb' is not installed"),
    "report_to unknown": (lambda t: ["report_to=[wandbx]"], "report_to: 'wandbx' is not one of"),
    "model directory missing": (lambda t: ["model.name=./no/such/dir"], "./no/such/dir: cannot load model "
                                "(directory does not exist)"),
    "model is a file": (lambda t: [_bad_data(t, "m.bin", "x").replace("data.train", "model.name")],
                        "a file, not a model directory"),
    "hub id not cached, offline": (lambda t: ["model.name=nobody/no-such-model"], "HF_HUB_OFFLINE is set"),
    "data path is a directory": (lambda t: [f"data.train={t}"], "is a directory, not a data file"),
    "infinite lr (1e309)": (lambda t: ["stage2.lr=1e309"], "stage2.lr must be a finite number, got inf"),
    "NaN weight decay": (lambda t: ["stage1.weight_decay=.nan"], "stage1.weight_decay must be a finite number"),
    "a number where text belongs": (lambda t: ["model.name=123"], "model.name must be text, got 123"),
    "a YAML boolean where text belongs": (lambda t: ["data.completion=yes"], "data.completion must be text, got True"),
    "a word where a flag belongs": (lambda t: ["overwrite=maybe"], "overwrite must be true or false"),
    "negative seed": (lambda t: ["seed=-1"], "seed must be an integer in [0, 2**32)"),
    "zero eval batch": (lambda t: ["eval.batch_size=0"], "eval.batch_size must be a positive integer"),
    "dropout 1": (lambda t: ["stage2.dropout=1"], "stage2.dropout must be in [0, 1) or null"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_one_line_exit_2_nothing_written(case, tmp_path, tiny_dirs, task_files, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the cases hold on any machine (fp16 one needs it)
    monkeypatch.setattr("transformers.integrations.integration_utils.get_available_reporting_integrations",
                        lambda: ["tensorboard"])  # wandb counts as not installed wherever the test runs
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
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


def test_overwrite_replaces_an_earlier_run_only_never_a_folder_or_an_input(tmp_path, tiny_dirs, task_files, capsys):
    """overwrite=true deletes the output directory: a folder that is no run (the working directory, a folder of
    runs) or that holds the model or data the run reads is refused in one line, and kept whole."""
    runs = tmp_path / "runs"
    (runs / "other-run").mkdir(parents=True)
    (runs / "other-run" / "config.fingerprint.json").write_text("{}")
    cfg = _config(tmp_path, tiny_dirs, task_files)
    _fails(["train", cfg, "overwrite=true", f"output_dir={runs}"], capsys,
           "not a promot run (config.fingerprint.json missing)")
    assert (runs / "other-run" / "config.fingerprint.json").is_file()
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.fingerprint.json").write_text("{}")  # an earlier run's folder, which the data now lives in
    data = own / "train.jsonl"
    data.write_text(task_files["train"].read_text())
    _fails(["train", cfg, "overwrite=true", f"output_dir={own}", f"data.train={data}"], capsys,
           f"holds {data}, which this job reads")
    _fails(["train", cfg, "overwrite=true", f"output_dir={tiny_dirs['llama'].parent}"], capsys, "which this job reads")
    assert data.is_file() and (tiny_dirs["llama"] / "config.json").is_file()
    for over in ([], ["overwrite=true"]):
        _fails(["train", cfg, *over, f"output_dir={data}"], capsys, "output_dir is a file")


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


@pytest.mark.parametrize("code, words", [("ENOSPC", "No space left on device"), ("EACCES", "Permission denied")])
def test_disk_full_and_permission_errors_are_reported_as_such(code, words, monkeypatch, capsys, tmp_path, tiny_dirs,
                                                              task_files):
    """The OS error hits where the run writes its model (after training): one line in the system's own words and
    the path, exit 2, and no run.json, so the run never looks complete (root ignores chmod, hence the patch)."""
    import errno

    def refuse(directory, *args, **kwargs):
        raise OSError(getattr(errno, code), words, str(directory))

    monkeypatch.setattr("promot.training.pipeline.save_model", refuse)
    argv = ["train", _config(tmp_path, tiny_dirs, task_files), "method=finetune"]
    if code == "EACCES":
        _fails(argv, capsys, f"{tmp_path / 'run' / 'model'}: {words}")
    else:  # a full disk: the file, the space free there, and how to go on; exit 1 (not bad input)
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"promot: error: {tmp_path / 'run' / 'model'}: no space left on "
                                                   "the device (") and " free there); " in err[0], err
        assert err[0].endswith(f"`promot train --resume {tmp_path / 'run'}` (its checkpoints are intact)"), err
    assert not (tmp_path / "run" / "run.json").exists()


OTHER = {
    "eval a non-run": (lambda t: ["eval", str(t)], "not a finished promot run"),
    "report a non-run": (lambda t: ["report", str(t)], "not a finished promot run"),
    "generate a non-run": (lambda t: ["generate", str(t), "x"], "not a finished promot run"),
    "diagnose a missing config": (lambda t: ["diagnose", "gradient-alignment", str(t / "nope.yaml")],
                                  "config file not found"),
    "eval with nothing to evaluate": (lambda t: ["eval", "--out", str(t / "o")], "nothing to evaluate"),
    "eval multiturn without chat template": (lambda t: ["eval", "--fewshot-as-multiturn", "--out", str(t / "o")],
                                             "needs --apply-chat-template"),
    "eval negative bootstrap": (lambda t: ["eval", "--bootstrap", "-1", "--out", str(t / "o")],
                                "argument --bootstrap: must be an integer >= 0, got -1"),
    "eval --limit 0": (lambda t: ["eval", "--limit", "0"], "argument --limit: must be a positive integer, got 0"),
    "eval --shots abc": (lambda t: ["eval", "--shots", "abc"], "argument --shots: must be comma-separated shot counts"),
    "eval --shots -1": (lambda t: ["eval", "--shots=-1"], "argument --shots: must be comma-separated shot counts, "
                        "integers >= 0, got -1"),
    "eval --shots 1,1": (lambda t: ["eval", "--shots", "1,1"], "must name each shot count once"),
    "eval --target-shots -2": (lambda t: ["eval", "--target-shots=-2"], "argument --target-shots: must be an integer"),
    "eval --batch-size 0": (lambda t: ["eval", "--batch-size", "0"], "argument --batch-size: must be a positive"),
    "eval --tasks ,": (lambda t: ["eval", "--tasks", ",", "--out", str(t / "o")], "--tasks: name at least one"),
    "compare --limit x": (lambda t: ["compare", str(t / "f.txt"), "--methods", "promot", "--limit", "x"],
                          "argument --limit: must be a positive integer, got 'x'"),
    "generate --max-new-tokens 0": (lambda t: ["generate", str(t), "x", "--max-new-tokens", "0"],
                                    "argument --max-new-tokens: must be a positive integer"),
    "diagnose --every 0": (lambda t: ["diagnose", "gradient-alignment", "c.yaml", "--every", "0"],
                           "argument --every: must be a positive integer"),
    "world export onto a file": (lambda t: ["world", "export", "--out", str(t / "f.txt")], "f.txt"),
    "train with neither config nor --resume": (lambda t: ["train"], "needs a config file, or --resume RUN"),
    "train with a config and --resume": (lambda t: ["train", str(t / "f.txt"), "--resume", str(t)], "no config file or overrides"),
    "resume with overrides": (lambda t: ["train", "--resume", str(t), "stage2.lr=1"], "no config file or overrides"),
    "resume a non-run": (lambda t: ["train", "--resume", str(t)], "not a promot run directory"),
    "unknown accelerate preset": (lambda t: ["train", str(t / "f.txt"), "--accelerate-config", "ddp3"],
                                  "not a preset (ddp, fsdp2, zero2, zero3) nor a file"),
    "zero2 without deepspeed": (lambda t: ["train", str(t / "f.txt"), "--accelerate-config", "zero2"],
                                "needs DeepSpeed"),
    "zero3 (not supported yet)": (lambda t: ["train", str(t / "f.txt"), "--accelerate-config", "zero3"],
                                  "fsdp2 shards the same way and is supported"),
    "zero processes": (lambda t: ["train", str(t / "f.txt"), "--num-processes", "0"], "positive integer"),
}


@pytest.mark.parametrize("case", sorted(OTHER))
def test_other_commands_bad_input_one_line_exit_2(case, tmp_path, capsys):
    (tmp_path / "f.txt").write_text("a file, not a folder")
    argv, expect = OTHER[case]
    _fails(argv(tmp_path), capsys, expect)


@pytest.mark.parametrize("answer, expect", [
    (ConnectionError("Name or service not known"), "the Hub is unreachable: ConnectionError"),
    (None, "no such local directory nor Hugging Face Hub model"),
])
def test_hub_id_fails_fast_without_network(answer, expect, tmp_path, tiny_dirs, task_files, capsys, monkeypatch):
    """Without HF_HUB_OFFLINE, one Hub request answers (no transformers retry loop) and nothing is written."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    def model_info(self, repo_id, **kwargs):
        if answer is None:  # what the Hub answers for a repo that does not exist (built without an HTTP response)
            missing = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
            Exception.__init__(missing, "404")
            raise missing
        raise answer

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(HfApi, "model_info", model_info)
    monkeypatch.setattr("transformers.AutoConfig.from_pretrained", lambda *a, **k: pytest.fail("not reached"))
    _fails(["train", _config(tmp_path, tiny_dirs, task_files), "model.name=nobody/no-such-model"], capsys, expect)
    assert not (tmp_path / "run").exists()


def test_template_mapping_in_yaml_is_one_clear_line(tmp_path, tiny_dirs, task_files, capsys):
    cfg = yaml.safe_load(open(_config(tmp_path, tiny_dirs, task_files)))
    cfg["data"]["template"] = "TEMPLATE"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg).replace("TEMPLATE", "{question}"))  # unquoted
    _fails(["train", str(tmp_path / "config.yaml")], capsys, "data.template: expected a string, got a mapping")
    assert not (tmp_path / "run").exists()


def test_debug_and_overrides_after_options(tmp_path, tiny_dirs, task_files, capsys):
    """`--debug` after the subcommand and key=value overrides after an option both parse (the error is the
    override's own, raised as an exception under --debug)."""
    from promot.errors import ConfigError, PromotError

    cfg = _config(tmp_path, tiny_dirs, task_files)
    with pytest.raises(ConfigError, match="stage2.lr must be a finite number"):
        main(["train", cfg, "--debug", "stage2.lr=fast"])
    _fails(["diagnose", "gradient-alignment", cfg, "--every", "5", "stage2.lr=fast"], capsys,
           "stage2.lr must be a finite number")
    with pytest.raises(PromotError, match="not a finished promot run"):
        main(["generate", str(tmp_path), "x", "--debug"])
    assert main(["train", cfg, "--debug", "--nope"]) == 2  # anything else left over is still argparse's error
    assert capsys.readouterr().err.strip() == ("promot: error: unrecognized arguments: --nope (see `promot --help`)")


def test_lm_eval_command_finds_the_shipped_suites_and_user_paths(tiny_task):
    """`promot lm-eval --tasks world_true_false` (the README's form) needs no --include_path; a user's one is kept."""
    import lm_eval.tasks

    from promot.evaluate.lm_eval_cli import with_shipped_suites as _with_shipped_suites

    original = lm_eval.tasks.TaskManager
    try:
        _with_shipped_suites()
        manager = lm_eval.tasks.TaskManager(include_path=str(tiny_task), include_defaults=False)
        assert {"world_true_false", "mini_has_a", "tiny_first"} <= set(manager.all_tasks)
        assert "world_true_false" in lm_eval.tasks.TaskManager(include_defaults=False).all_tasks
    finally:
        lm_eval.tasks.TaskManager = original


def test_artifacts_respect_the_umask(tmp_path, tiny_dirs, task_files):
    """Weights (safetensors writes 0600 whatever the umask), checkpoints and every other file: 0644 under 022."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        assert main(["train", _config(tmp_path, tiny_dirs, task_files), "stage2.save_every=2"]) == 0
    finally:
        os.umask(old)
    run = tmp_path / "run"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" and "checkpoint-" in str(p) for p in files)
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o644"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in run.rglob("*") if p.is_dir()} == {"0o755"}


def test_generate_with_prompt_on_a_run_without_one_is_refused(tmp_path, tiny_dirs, task_files, capsys):
    assert main(["train", _config(tmp_path, tiny_dirs, task_files), "method=finetune"]) == 0
    run = capsys.readouterr().out.strip().splitlines()[-1]
    _fails(["generate", run, "a b c", "--prompt"], capsys, "the run has no prompt of its own (method finetune)")
    for flags in ([], ["--no-prompt"]):  # the default (attach it when there is one) and bare still answer
        assert main(["generate", run, "a b c", "--max-new-tokens", "1", *flags]) == 0
        assert len(capsys.readouterr().out.strip().splitlines()) == 1


class _SafetensorError(Exception):
    """safetensors' writer on a full disk (not an OSError)."""


def test_a_full_disk_in_any_atomic_write_keeps_the_old_file_and_names_the_new(tmp_path, monkeypatch):
    """eval.json, run.json, an export or a model (promot.io's atomic writes, every artifact's path): the target keeps
    its old content, no temporary file or folder stays, the line names the file, the space free and the bytes it got
    to, and the error is DiskFullError (exit 1)."""
    import os

    from promot.errors import DiskFullError
    from promot.io import atomic_dir, atomic_write_json

    target = tmp_path / "eval.json"
    target.write_text("old\n")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("promot.io.os.fsync", full)
    with pytest.raises(DiskFullError, match=rf"{target}: no space left on the device \(.* free there, it needs more "
                                            r"than \d+ B\); nothing half-written was kept\. Free space, then run it"):
        atomic_write_json(target, {"a": "b" * 100})
    assert target.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["eval.json"]

    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "config.json").write_text("{}")
    with pytest.raises(DiskFullError, match=f"{tmp_path / 'export'}: no space left") as caught:
        with atomic_dir(tmp_path / "export") as tmp:
            (tmp / "model.safetensors").write_bytes(b"x" * 2000)
            raise _SafetensorError('IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
    assert caught.value.exit_code == 1 and caught.value.needs == 2000
    assert sorted(os.listdir(tmp_path)) == ["eval.json", "export"]
    assert os.listdir(tmp_path / "export") == ["config.json"]
