"""Property-based: any drawn `promot train` / `eval` / `compare` arguments and config values either run or exit 2
with one line (`promot: error: ...`) — never a traceback, never a directory left behind. On the tiny model at
budgets of 1-2 steps. A few examples per command in the default suite (derandomized: the same ones every run);
`pytest -m fuzz` draws many more (PROMOT_FUZZ_EXAMPLES, default 200, fresh each run)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from promot.cli import main
from tests.conftest import run_config

KEYS = ["stage1.steps", "stage2.steps", "stage1.lr", "stage2.lr", "prompt.length", "method", "data.max_length",
        "data.shots", "eval.limit", "eval.max_new_tokens", "seed", "stage2.warmup_steps", "stage2.batch_size",
        "stage2.grad_accum", "stage1.optimizer", "data.truncation", "prompt.init", "stage2.dropout",
        "stage2.label_smoothing", "stage1.save_every", "eval.metric", "data.template", "model.dtype", "bf16",
        "overwrite", "stage2.weight_decay", "lora.r", "mixing_temperature", "stage2.lr_scheduler",
        "data.validation_size", "report_to", "model.name", "stage2", "prompt.init_text", "stage3.lr"]
VALUES = ["-1", "0", "1", "2", "1.5", "1e309", ".nan", "-.inf", "abc", "", "yes", "null", "[1, 2]", "{a: 1}", "1e-3",
          "0.3", "adamw", "finetune", "lora", "prompt-tuning", "joint", "text", "error", "linear", "bfloat16", "true",
          "false", "'x'", "has", "99999999999999999999"]
STAGE = {"steps": 1, "batch_size": 4, "eval_every": 0, "eval_on_start": False, "save_every": 0}
DEFAULT = int(os.environ.get("PROMOT_FUZZ_EXAMPLES", "200"))
QUICK = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LONG = settings(max_examples=DEFAULT, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

overrides = st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map("=".join), max_size=3)


def _outcome(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Exit code and stderr lines of one CLI call; any exception escaping `main` (a traceback) fails the test."""
    capsys.readouterr()
    rc = main(argv)
    event(f"{argv[0]} exit {rc}")  # `--hypothesis-show-statistics`: how many ran, how many were refused
    return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _refused_in_one_line(rc: int, err: list[str], argv: list[str]) -> None:
    assert rc in (0, 2), (argv, rc, err[-5:])
    if rc == 2:
        assert len(err) == 1 and err[0].startswith("promot: error: "), (argv, err[-5:])
        assert "Traceback" not in err[0]


@pytest.fixture(scope="module")
def base_config(tiny_dirs, task_files, tmp_path_factory) -> dict:
    return run_config(tiny_dirs["llama"], task_files, Path("unused"), stage1=STAGE, stage2=STAGE)


def _train_property(base_config: dict, capsys, over: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-train-"))
    try:
        run = root / "run"
        cfg = root / "c.yaml"
        cfg.write_text(yaml.safe_dump({**base_config, "output_dir": str(run)}))
        argv = ["train", str(cfg), *over]
        rc, err = _outcome(argv, capsys)
        _refused_in_one_line(rc, err, argv)
        if rc == 0:
            assert (run / "run.json").is_file(), argv
        elif "diverged" not in err[0]:  # a NaN loss keeps what was written so far, by design (README)
            assert not run.exists(), (argv, err)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@QUICK
@given(over=overrides)
def test_train_runs_or_refuses_in_one_line(base_config, capsys, over):
    _train_property(base_config, capsys, over)


@pytest.mark.fuzz
@LONG
@given(over=overrides)
def test_train_fuzz_long(base_config, capsys, over):
    _train_property(base_config, capsys, over)


EVAL_OPTIONS = {"--shots": ["0", "1", "0,1", "-1", "abc", "", "1,1", "1.5"], "--limit": ["0", "1", "2", "-3", "x"],
                "--target-shots": ["0", "-1", "z"], "--batch-size": ["0", "1", "4", "-2"],
                "--bootstrap": ["0", "-1", "10", "x"], "--tasks": ["tiny_first", "no_such_task", ",", ""],
                "--labels": ["a,b", ""], "--target-task": ["tiny_first", ""]}
eval_args = st.lists(st.sampled_from(sorted(EVAL_OPTIONS)).flatmap(
    lambda opt: st.sampled_from(EVAL_OPTIONS[opt]).map(lambda v: [f"{opt}={v}"])), max_size=3).map(
    lambda parts: sum(parts, [])) | st.just(["--fewshot-as-multiturn"])


@pytest.fixture(scope="module")
def finished_run(base_config, tmp_path_factory) -> Path:
    from promot import api

    return api.train({**base_config, "output_dir": str(tmp_path_factory.mktemp("fuzz") / "run")})


def _eval_property(run: Path, tiny_task: Path, capsys, args: list[str]) -> None:
    (run / "eval.json").unlink(missing_ok=True)
    argv = ["eval", str(run), "--include-path", str(tiny_task), "--tasks", "tiny_first", "--limit", "2",
            "--shots", "0", "--bootstrap", "0", *args]  # later options win: the drawn ones
    rc, err = _outcome(argv, capsys)
    _refused_in_one_line(rc, err, argv)
    assert (run / "eval.json").is_file() == (rc == 0), (argv, err)


@QUICK
@given(args=eval_args)
def test_eval_runs_or_refuses_in_one_line(finished_run, tiny_task, capsys, args):
    _eval_property(finished_run, tiny_task, capsys, args)


@pytest.mark.fuzz
@LONG
@given(args=eval_args)
def test_eval_fuzz_long(finished_run, tiny_task, capsys, args):
    _eval_property(finished_run, tiny_task, capsys, args)


def _compare_property(base_config: dict, tiny_task: Path, capsys, methods: str, over: list[str],
                      args: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-compare-"))
    try:
        cfg, out = root / "c.yaml", root / "out"
        cfg.write_text(yaml.safe_dump(base_config))
        argv = ["compare", str(cfg), *over, "--methods", methods, "--out", str(out), "--include-path",
                str(tiny_task), "--tasks", "tiny_first", "--limit", "1", "--shots", "0", "--bootstrap", "0", *args]
        rc, err = _outcome(argv, capsys)
        _refused_in_one_line(rc, err, argv)
        if rc == 0:
            assert (out / "report" / "report.html").is_file(), argv
        elif "diverged" not in err[0]:
            assert not out.exists(), (argv, err)
    finally:
        shutil.rmtree(root, ignore_errors=True)


methods = st.sampled_from(["prompt-tuning", "finetune", "magic", "finetune,finetune", "", "prompt-tuning,lora"])


@settings(QUICK, max_examples=3)
@given(methods=methods, over=st.lists(st.sampled_from(["stage2.lr=1e309", "method=x", "stage1.steps=2",
                                                      "seed=-1", "eval.limit=1"]), max_size=1),
       args=eval_args)
def test_compare_runs_or_refuses_in_one_line(base_config, tiny_task, capsys, methods, over, args):
    _compare_property(base_config, tiny_task, capsys, methods, over, args)


@pytest.mark.fuzz
@settings(LONG, max_examples=max(1, DEFAULT // 4))
@given(methods=methods, over=overrides, args=eval_args)
def test_compare_fuzz_long(base_config, tiny_task, capsys, methods, over, args):
    _compare_property(base_config, tiny_task, capsys, methods, over, args)


# --- data files: records of random shapes, value types, encodings and line endings ---------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("abc ?:\n\"',;é€") + ["\u2028", "\x00"]), max_size=12)
_VALUE = st.one_of(_TEXT, st.sampled_from(["True", "False"]), st.integers(-3, 3), st.floats(allow_nan=True),
                   st.none(), st.booleans(), st.lists(_TEXT, max_size=2), st.dictionaries(_TEXT, _TEXT, max_size=2))
_TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", 3]),
                               "content": st.one_of(_VALUE, st.lists(st.fixed_dictionaries(
                                   {"type": st.sampled_from(["text", "image_url"]), "text": _TEXT}), max_size=2))})
_RECORD = st.one_of(
    st.fixed_dictionaries({"prompt": _VALUE, "completion": _VALUE}),
    st.fixed_dictionaries({"messages": st.one_of(_VALUE, st.lists(_TURN, max_size=4))}),
    st.fixed_dictionaries({"instruction": _VALUE, "output": _VALUE}, optional={"input": _VALUE}),
    st.fixed_dictionaries({"conversations": st.lists(st.fixed_dictionaries(
        {"from": st.sampled_from(["human", "gpt", "x"]), "value": _VALUE}), max_size=3)}),
    st.dictionaries(st.sampled_from(["prompt", "completion", "x", ""]), _VALUE, max_size=3),
)
_GOOD = {"prompt": "a b c question : it has a ? answer :", "completion": "True"}


def _write_data(path: Path, kind: str, records: list, encoding: str, newline: str) -> Path:
    """`records` as a file of `kind`, in `encoding` (utf-8, utf-8-sig, latin-1), lines ended by `newline`."""
    import csv
    import io
    import json

    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pa.Table.from_pylist([r if isinstance(r, dict) else {"value": r} for r in records])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, TypeError):
            table = pa.Table.from_pylist([{"prompt": json.dumps(r)} for r in records])  # mixed types: as text
        pq.write_table(table, path)
        return path
    if kind == "csv":
        out = io.StringIO()
        keys = sorted({k for r in records if isinstance(r, dict) for k in r}) or ["prompt"]
        writer = csv.DictWriter(out, fieldnames=keys, lineterminator=newline, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: v if isinstance(v, str) else json.dumps(v) for k, v in r.items()} for r in records
                          if isinstance(r, dict)])
        text = out.getvalue()
    elif kind == "json":
        text = json.dumps(records, ensure_ascii=False, indent=1).replace("\n", newline)
    else:
        text = newline.join(json.dumps(r, ensure_ascii=False) for r in records) + newline
    path.write_bytes(text.encode(encoding, errors="replace"))
    return path


def _data_property(base_config: dict, capsys, kind: str, records: list, encoding: str, newline: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-data-"))
    try:
        data = _write_data(root / f"d.{kind}", kind, [*records, *[_GOOD] * 8], encoding, newline)
        run = root / "run"
        cfg = {**base_config, "output_dir": str(run), "data": {**base_config["data"], "train": str(data),
                                                                "validation": None, "validation_size": 2}}
        cfg["data"].pop("template", None)
        cfg["data"].pop("completion", None)
        (root / "c.yaml").write_text(yaml.safe_dump(cfg))
        argv = ["train", str(root / "c.yaml"), "method=finetune"]
        rc, err = _outcome(argv, capsys)
        _refused_in_one_line(rc, err, argv)
        if rc == 0:
            assert (run / "run.json").is_file(), argv
        else:
            assert "d." + kind in err[0] or "data." in err[0], (kind, err)  # the file (and line) is named
            if "diverged" not in err[0]:
                assert not run.exists(), (argv, err)
    finally:
        shutil.rmtree(root, ignore_errors=True)


_data_args = {"kind": st.sampled_from(["jsonl", "json", "csv", "parquet"]), "records": st.lists(_RECORD, max_size=3),
              "encoding": st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]),
              "newline": st.sampled_from(["\n", "\r\n", "\r"])}


@settings(QUICK, max_examples=6)
@given(**_data_args)
def test_any_data_file_trains_or_is_refused_naming_file_and_line(base_config, capsys, kind, records, encoding,
                                                                  newline):
    _data_property(base_config, capsys, kind, records, encoding, newline)


@pytest.mark.fuzz
@LONG
@given(**_data_args)
def test_data_file_fuzz_long(base_config, capsys, kind, records, encoding, newline):
    _data_property(base_config, capsys, kind, records, encoding, newline)
