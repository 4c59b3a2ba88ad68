"""Data: readers name the bad line, templates name the missing field, targets are never cut, shots are fair."""
from __future__ import annotations

import pytest
from conftest import make_tokenizer

from promot.data import IGNORE, Collator, Example, Tokenizing, read_records, render, with_shots
from promot.errors import DataError


def test_malformed_jsonl_line_is_named(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "a", oops}\n')
    with pytest.raises(DataError, match=r"d.jsonl:3: malformed JSON"):
        read_records(str(f))


def test_empty_and_missing_files(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n\n")
    with pytest.raises(DataError, match="dataset is empty"):
        read_records(str(f))
    with pytest.raises(DataError, match="data file not found"):
        read_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported data format"):
        read_records(str(tmp_path / "d.txt"))


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("name", ["d.jsonl", "d.csv"])
def test_invalid_utf8_names_file_and_line(tmp_path, bom, name):
    f = tmp_path / name
    good = b'{"prompt": "a", "completion": "b"}\n'  # decoding fails before any parsing: the same bytes for csv
    f.write_bytes(bom + good * 6 + b'{"prompt": "caf\xe9", "completion": "b"}\n' + good)
    with pytest.raises(DataError, match=rf"{name}:7: not UTF-8 text \(byte 16 of the line; save the file as UTF-8\)"):
        read_records(str(f))


@pytest.mark.parametrize("kind", ["Dataset", "DatasetDict"])
def test_save_to_disk_folder_loads_as_data(tmp_path, kind):
    """A folder `datasets`' save_to_disk wrote: a Dataset as it is, a DatasetDict's split by data.*_split."""
    import datasets

    rows = [{"prompt": f"a {i}", "completion": "True"} for i in range(3)]
    ds = datasets.Dataset.from_list(rows)
    if kind == "DatasetDict":
        ds = datasets.DatasetDict({"train": ds, "dev": ds.select([0])})
    ds.save_to_disk(str(tmp_path / "saved"))
    got = read_records(str(tmp_path / "saved"))
    assert [r.fields for r in got] == rows
    if kind == "DatasetDict":
        assert got[1].where == f"{tmp_path / 'saved'}[train][1]"
        assert [r.fields for r in read_records(str(tmp_path / "saved"), "dev")] == rows[:1]
        with pytest.raises(DataError, match=r"saved: no split 'validation' in this DatasetDict \(it has train, dev"):
            read_records(str(tmp_path / "saved"), "validation")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="plain: is a directory, not a data file .* nor a `datasets` save_to_disk"):
        read_records(str(tmp_path / "plain"))


def test_csv_and_template_over_columns(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("premise,hypothesis,label\nA cat,A pet,True\n")
    ex = render(read_records(str(f)), "{premise} question: {hypothesis} answer:", "{label}")
    assert ex == [Example("A cat question: A pet answer:", "True", f"{f}:2")]


def test_missing_field_is_named(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"premise": "x", "label": "True"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:1: field 'hypothesis' is missing"):
        render(read_records(str(f)), "{premise} {hypothesis}", "{label}")


def _tk(max_length=12, truncation="left", seq2seq=False):
    return Tokenizing(make_tokenizer(), seq2seq, max_length, truncation)


def test_loss_on_target_only_with_eos():
    tk = _tk()
    row = tk.encode(Example("a b question", "True", "x:1"))
    tok = tk.tokenizer
    assert row["input_ids"][:4] == [tok.bos_token_id, *tok.convert_tokens_to_ids(["a", "b", "question"])]
    assert row["labels"][:4] == [IGNORE] * 4
    assert row["labels"][4:] == tok.convert_tokens_to_ids(["True"]) + [tok.eos_token_id]


def test_long_input_loses_oldest_tokens_but_keeps_bos_and_target():
    tk = _tk(max_length=6)
    row = tk.encode(Example("a b c d e f g h", "True", "x:1"))
    tok = tk.tokenizer
    assert len(row["input_ids"]) == 6 and row["truncated"]
    assert row["input_ids"][0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens(row["input_ids"][1:4]) == ["f", "g", "h"]
    assert row["labels"][-2:] == tok.convert_tokens_to_ids(["True"]) + [tok.eos_token_id]


def test_over_budget_is_refused_when_asked_and_long_targets_always():
    with pytest.raises(DataError, match=r"x:1: input is 9 tokens"):
        _tk(max_length=6, truncation="error").encode(Example("a b c d e f g h", "True", "x:1"))
    with pytest.raises(DataError, match=r"x:7: target is 7 tokens, too long for data.max_length=6"):
        _tk(max_length=6).encode(Example("a", "a b c d e f", "x:7"))


def test_collator_right_pads_with_masked_labels():
    batch = Collator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [5], "labels": [5]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]


def test_shots_are_deterministic_and_never_the_example_itself():
    pool = [Example(f"q{i}", f"t{i}", f"x:{i}") for i in range(10)]
    a = with_shots(pool, pool, 2, " ", "\n\n", seed=3)
    assert a == with_shots(pool, pool, 2, " ", "\n\n", seed=3)
    assert a != with_shots(pool, pool, 2, " ", "\n\n", seed=4)
    for ex, orig in zip(a, pool):
        parts = ex.input.split("\n\n")
        assert len(parts) == 3 and parts[-1] == orig.input
        assert f"{orig.input} {orig.target}" not in parts[:2]
    with pytest.raises(DataError, match="needs more than 10"):
        with_shots(pool, pool, 10, " ", "\n\n", 0)


def _data_cfg(**kw):
    from promot.config import DataConfig

    return DataConfig(**kw)


def test_load_task_data_kshot_validation_draws_shots_from_train(task_files):
    from promot.data import load_task_data

    cfg = _data_cfg(train=str(task_files["train"]), validation=str(task_files["validation"]),
                    template="{premise} ? {hypothesis}", completion="{label}", shots=1)
    data = load_task_data(cfg, seed=0)
    train_inputs = {f"{r.input.split(chr(10) * 2)[-1]} {r.target}" for r in data.train}
    for ex in data.validation:
        shot, query = ex.input.split("\n\n")
        assert shot in train_inputs and "?" in query


def test_held_out_validation_when_none_given(task_files):
    from promot.data import load_task_data

    data = load_task_data(_data_cfg(train=str(task_files["train"]), template="{premise}", completion="{label}",
                                    validation_size=8), seed=0)
    assert len(data.train) == 56 and len(data.validation) == 8


def test_datasets_path_reads_a_local_dataset_folder(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n')
    records = read_records(f"hf:{d}", "train")
    assert [r.fields["prompt"] for r in records] == ["a", "c"]
    with pytest.raises(DataError, match="cannot load split 'test'"):
        read_records(f"hf:{d}", "test")


def test_chat_template_wraps_the_input_as_a_user_turn():
    from promot.data import with_chat_template

    tok = make_tokenizer()
    with pytest.raises(DataError, match="no chat template"):
        with_chat_template([Example("hi", "x", "w")], tok)
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    (ex,) = with_chat_template([Example("hi", "x", "w")], tok)
    assert ex.input == "<user>hi<assistant>" and ex.target == "x"
