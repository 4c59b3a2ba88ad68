"""Configs: YAML + dotted overrides, per-stage defaults, unknown keys suggested, every bad value reported."""
from __future__ import annotations

import pytest

from promot.config import load_config
from promot.errors import ConfigError

BASE = {"model": {"name": "m"}, "data": {"train": "t.jsonl"}}


def test_overrides_parse_yaml_values_and_keep_stage_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: m}\ndata: {train: t.jsonl}\nstage2: {steps: 7}\n")
    cfg = load_config(path, ["stage2.lr=3e-5", "method=finetune", "data.shots=1", "report_to=[tensorboard]"])
    assert cfg.stage2.lr == 3e-5 and cfg.stage2.steps == 7 and cfg.method == "finetune"
    assert cfg.data.shots == 1 and cfg.report_to == ["tensorboard"]
    assert cfg.stage1.lr == 0.3  # stage 1 keeps its prompt-tuning default when only stage 2 is given


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'stage2.learning_rat'.*did you mean 'lr'"):
        load_config(BASE, ["stage2.learning_rat=1"])
    with pytest.raises(ConfigError, match=r"did you mean 'method'"):
        load_config({**BASE, "methd": "promot"})


def test_all_bad_values_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_config({**BASE, "method": "magic", "stage1": {"steps": 0}, "eval": {"metric": "f1"}})
    msg = str(e.value)
    assert "method 'magic'" in msg and "stage1.steps" in msg and "eval.metric 'f1'" in msg


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: m\n  dtype: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: invalid YAML"):
        load_config(path)


def test_missing_required_fields():
    with pytest.raises(ConfigError, match="model.name \\(or model.init_from\\) is required; data.train \\(or tasks\\) is required"):
        load_config({})


def test_lr_schedulers_are_transformers_scheduler_types():
    from transformers import SchedulerType

    from promot.config import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) == {s.value for s in SchedulerType}


def test_a_word_outside_a_keys_choices_is_refused_from_its_declared_type_alone():
    """Keys that take one of a few words are `Literal` types: the type check names the choices, with the key's own
    path (in a task too), and the optimizer names are exactly those Trainer is given a mapping for."""
    import typing

    from promot.config import OPTIMIZERS
    from promot.config_sections import Optimizer
    from promot.errors import ConfigError

    assert set(typing.get_args(Optimizer)) == set(OPTIMIZERS)
    base = {"model": {"name": "x"}, "data": {"train": "d.jsonl"},
            "tasks": [{"name": "a", "data": {"train": "d.jsonl"}, "metric": "f2"}]}
    with pytest.raises(ConfigError) as e:
        load_config(base, ["model.dtype=int8", "stage1.optimizer=sgd", "data.truncation=3"])
    text = str(e.value)
    assert "model.dtype 'int8' is not one of float32, bfloat16, float16" in text
    assert "stage1.optimizer 'sgd' is not one of adafactor, adamw" in text
    assert "tasks[0].metric 'f2' is not one of accuracy, exact_match, bleu" in text
    assert "data.truncation must be one of left, error, got 3" in text


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SHIPPED = sorted([*(ROOT / "examples").rglob("*.yaml"), ROOT / "src" / "promot" / "world" / "demo.yaml"])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_loads_and_validates(path):
    """load_config validates; the demo config is validated as `promot demo` completes it (data paths, method)."""
    if path.name == "demo.yaml":
        from promot.world.demo import demo_config

        from promot.compare import method_configs
        from promot.world.demo import METHODS

        for quick in (True, False):
            method_configs(demo_config(quick), list(METHODS), ROOT / "runs" / "demo")
        return
    load_config(path)


def test_the_config_knows_every_method_of_the_method_table():
    """config.py validates `method` without importing the training rooms: its list must be the table's keys."""
    from promot.config import METHODS
    from promot.training import METHODS as TABLE

    assert METHODS == tuple(TABLE)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: m}\ndata: {train: t.jsonl}\nstage2:\n  lr: 1.0e-4\n  steps: 3\n  lr: 3.0e-5\n")
    with pytest.raises(ConfigError, match=r"c.yaml:6: invalid YAML \(duplicate key 'lr', first at line 4"):
        load_config(path)
    path.write_text("model: {name: m}\ndata: {train: t.jsonl}\nmodel: {name: n}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: .*duplicate key 'model', first at line 1"):
        load_config(path)


def test_types_are_checked_by_declaration_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        load_config({**BASE, "model": {"name": 5}, "stage2": {"lr": float("inf"), "steps": "ten"},
                     "eval": {"limit": 0}, "stage1": {"steps": 0}, "wise_ft": {"alphas": [0.5, float("nan")]}})
    msg = str(e.value)
    for part in ("model.name must be text, got 5", "stage2.lr must be a finite number, got inf",
                 "stage2.steps must be an integer, got 'ten'", "eval.limit must be a positive integer or null",
                 "stage1.steps must be a positive integer", "wise_ft.alphas must be a list of finite numbers"):
        assert part in msg, (part, msg)
    assert msg.count("stage2.steps") == 1  # a wrong type is not reported again by the range check


def test_the_method_rooms_problems_join_the_one_message():
    """Each room (promot/methods/) checks its own section; config.validate gathers them with the rest, before any
    model loads: an add-on's settings where the method uses it, LoRA's in every run."""
    with pytest.raises(ConfigError) as e:
        load_config({**BASE, "method": "promot-replay", "stage1": {"steps": 0}, "lora": {"r": 0},
                     "replay": {"fraction": 1.5}, "wise_ft": {"alphas": [2]}})
    msg = str(e.value)
    for part in ("stage1.steps must be a positive integer", "lora.r must be a positive integer, got 0",
                 "method promot-replay: replay.train is required", "replay.fraction must be in (0, 1), got 1.5"):
        assert part in msg, (part, msg)
    assert "wise_ft" not in msg  # promot-replay has no WiSE-FT: its section is not its concern
    load_config({**BASE, "method": "promot", "wise_ft": {"alphas": [2]}, "l2_sp": {"weight": 0}})


def test_train_help_documents_the_rooms_keys_from_their_docstrings():
    """config_docs reads the attribute docstrings of config.py's dataclasses and of the rooms' (promot/methods/)."""
    from promot.config_docs import describe

    rows = {key: (default, doc) for key, default, doc in describe()}
    assert rows["lora.r"] == (8, "LoRA rank (methods lora and promot-lora).")
    assert rows["replay.fraction"][0] == 0.2 and rows["replay.fraction"][1].startswith("Share of stage-2 examples")
    assert rows["replay.train"][1] == rows["data.train"][1] != ""  # a data section's keys keep data's docs
    assert rows["wise_ft.alphas"][1].startswith("Methods wise-ft, promot-wise-ft: the interpolation grid")
    assert rows["l2_sp.weight"] == (0.01, "Method l2-sp: λ of the penalty λ‖θ − θ_base‖² (summed over the trained "
                                           "weights) added to stage 2's loss.")
    keys = list(rows)  # data's keys, then the room's own: its lr (every room's), then fraction
    assert keys.index("replay.lr") == keys.index("replay.packing") + 1 == keys.index("replay.fraction") - 1
    assert rows["lora.lr"] == (None, "This method's stage-2 learning rate (default: stage2.lr). The run records the "
                                     "lr it trained at.")


def test_a_config_built_in_python_is_validated_like_a_file(tmp_path):
    """`promot.train(RunConfig(...))` gets config.validate's one message (the rooms' problems included), and
    nothing is written."""
    import dataclasses

    import promot
    from promot.config import RunConfig

    cfg = dataclasses.replace(RunConfig(), method="replay", output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="replay.train is required"):
        promot.train(cfg)
    assert not (tmp_path / "run").exists()
