"""Methods compared side by side share one stage 1: the reusing run equals a run that trained its own, bit for bit."""
from __future__ import annotations

import json

import torch
from conftest import run_config
from safetensors.torch import load_file

import promot
from promot.compare import method_configs, train_all
from promot.training import pipeline

SHORT = {"stage1": {"steps": 3, "lr": 0.3, "batch_size": 8, "eval_every": 3},
         "stage2": {"steps": 3, "lr": 1e-3, "batch_size": 8, "eval_every": 3}}


def _stage_rows(run, stage):
    """metrics.jsonl's rows of one stage, wall-clock fields left out."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "runtime" not in k and "per_second" not in k and "seconds" not in k}
            for r in rows if r["stage"] == stage]


def test_compare_trains_a_shared_stage_1_once_and_the_reusing_run_is_the_same(tiny_dirs, task_files, tmp_path,
                                                                               monkeypatch):
    trained = []
    original = pipeline.train_prompt
    monkeypatch.setattr(pipeline, "train_prompt", lambda *a, **k: trained.append(a[2].run_dir.name) or original(*a, **k))
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "x", **SHORT)
    pt, pm, ft = train_all(method_configs(cfg, ["prompt-tuning", "promot", "finetune"], tmp_path / "cmp"))
    assert trained == ["prompt-tuning"]  # promot reused it; finetune has no stage 1
    alone = promot.train({**cfg, "output_dir": str(tmp_path / "alone")})  # outside compare: trains its own
    assert trained == ["prompt-tuning", "alone"]
    for a, b in ((pm / "model" / "model.safetensors", alone / "model" / "model.safetensors"),
                 (pm / "prompt" / "adapter_model.safetensors", alone / "prompt" / "adapter_model.safetensors"),
                 (pt / "prompt" / "adapter_model.safetensors", alone / "prompt" / "adapter_model.safetensors")):
        x, y = load_file(a), load_file(b)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    for run in (pt, pm):
        assert _stage_rows(run, "stage1") == _stage_rows(alone, "stage1")
    assert _stage_rows(pm, "stage2") == _stage_rows(alone, "stage2")
    info = {r: json.loads((r / "run.json").read_text())["stages"] for r in (pt, pm, alone)}
    assert info[pt]["stage1"] == info[pm]["stage1"] == info[alone]["stage1"]
    assert info[pm]["stage2"] == info[alone]["stage2"]
