"""The shipped lm-eval suites: `mini` runs end to end offline; `paper` YAMLs parse, register and render (fake data)."""
from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import pytest  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.models.dummy import DummyLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from lm_eval.tasks._yaml_loader import load_yaml  # noqa: E402

from promot.evaluate.suites import SUITES_DIR, suite_dir  # noqa: E402

MINI_ICL = ["mini_capitals", "mini_arithmetic", "mini_antonyms", "mini_plurals", "mini_en_fr", "mini_sentiment",
            "mini_analogy", "mini_uppercase", "mini_sort3", "mini_first_letter"]
PAPER_ICL = ["paper_cb", "paper_wic", "paper_triviaqa", "paper_webqs", "paper_wmt16_en_de", "paper_wmt16_en_ro",
             "paper_xsum", "paper_wikilingua_en"]
PAPER_TARGET = ["paper_rte", "paper_wmt14_en_fr"]


class OracleLM(DummyLM):
    """Answers with the gold `answer` the way a real LM does (leading space, trailing period): checks the metric setup."""

    def generate_until(self, requests, disable_tqdm: bool = False):
        return [f" {r.doc['answer']}." for r in requests]


@pytest.fixture(scope="module")
def mini_tm():
    return TaskManager(include_path=str(suite_dir("mini")), include_defaults=False)


def test_suite_dir():
    assert suite_dir("mini") == SUITES_DIR / "mini"
    with pytest.raises(ValueError):
        suite_dir("nope")


def test_mini_registry(mini_tm):
    assert "mini" in mini_tm.all_groups and "mini_target" in mini_tm.all_tags
    assert set(MINI_ICL + ["mini_has_a"]) <= set(mini_tm.all_subtasks)
    assert mini_tm.task_index["mini_target"].tags == {"mini_has_a"}
    assert load_yaml(suite_dir("mini") / "mini.yaml")["task"] == MINI_ICL  # the group excludes the target


def test_mini_tasks_build_offline(mini_tm):
    tasks = mini_tm.load(MINI_ICL + ["mini_has_a"])["tasks"]
    formats = set()
    for name, task in tasks.items():
        assert len(task.test_docs()) >= 40 and len(task.fewshot_docs()) >= 16, name
        assert not task.doc_to_target(task.test_docs()[0]).startswith(" "), name
        meta = task.config.metadata
        assert meta["version"] == 1.0 and meta["answer_format"], name
        formats.add(meta["answer_format"])
    assert len(formats) >= 4
    assert tasks["mini_has_a"].config.metadata["labels"] == ["True", "False"]
    assert {d["label"] for d in tasks["mini_has_a"].test_docs()} == {"True", "False"}
    doc = tasks["mini_has_a"].test_docs()[0]
    assert tasks["mini_has_a"].process_results(doc, [" " + doc["label"].lower() + "."]) == {"exact_match": 1.0}
    doc = tasks["mini_uppercase"].test_docs()[0]  # the one case-sensitive task
    assert tasks["mini_uppercase"].process_results(doc, [" " + doc["answer"].lower()]) == {"exact_match": 0.0}


def test_mini_simple_evaluate_4shot(mini_tm):
    out = lm_eval.simple_evaluate(model=OracleLM(), tasks=["mini", "mini_target"], num_fewshot=4, limit=2,
                                  task_manager=mini_tm, log_samples=True)
    res = out["results"]
    assert set(MINI_ICL + ["mini", "mini_has_a"]) <= set(res)
    assert all(res[t]["exact_match,none"] == 1.0 for t in MINI_ICL + ["mini_has_a", "mini"])  # gold scores 1
    prompt = out["samples"]["mini_has_a"][0]["arguments"][0][0]
    assert prompt.count("Is it true or false? answer:") == 5 and prompt.endswith("answer:")
    out = lm_eval.simple_evaluate(model=DummyLM(), tasks=["mini"], num_fewshot=4, limit=2, task_manager=mini_tm)
    assert out["results"]["mini"]["exact_match,none"] == 0.0  # DummyLM says "lol"


def test_paper_yamls_parse_and_register():
    paper = suite_dir("paper")
    files = sorted(paper.glob("*.yaml")) + sorted(paper.glob("_*_yaml"))
    for f in files:
        assert isinstance(load_yaml(f, resolve_func=True), dict), f  # resolves !function and include:
    tm = TaskManager(include_path=str(paper))  # with built-ins, for the paper_lmeval groups
    assert set(PAPER_ICL + PAPER_TARGET) <= set(tm.all_subtasks)
    assert tm.task_index["paper"].tags == set(PAPER_ICL)
    assert tm.task_index["paper_target"].tags == set(PAPER_TARGET)
    for group in ("paper_lmeval", "paper_lmeval_target"):
        assert group in tm.all_groups and set(tm.task_index[group].cfg["task"]) <= set(tm.all_subtasks)


# One fake document per dataset, with the Hub schemas' field names, so paper tasks build without downloading.
FAKE = {
    "cb": {"premise": "It rains.", "hypothesis": "It is wet.", "idx": 0, "label": 2},
    "wic": {"word": "bank", "sentence1": "A river bank.", "sentence2": "A bank loan.", "start1": 8, "end1": 12,
            "start2": 2, "end2": 6, "idx": 0, "label": 0},
    "rte": {"premise": "Anna has a dog.", "hypothesis": "Anna has a pet.", "idx": 0, "label": 0},
    "rc.nocontext": {"question": "Who wrote Hamlet?", "question_id": "q0",
                     "answer": {"aliases": ["Shakespeare", "William Shakespeare"], "value": "Shakespeare"}},
    "web_questions": {"url": "u", "question": "what is the capital of france?", "answers": ["Paris"]},
    "de-en": {"translation": {"de": "Hallo Welt.", "en": "Hello world."}},
    "ro-en": {"translation": {"ro": "Salut lume.", "en": "Hello world."}},
    "fr-en": {"translation": {"fr": "Bonjour le monde.", "en": "Hello world."}},
    "xsum": {"document": "The cat sat on the mat all day long.", "summary": "A cat sat on a mat.", "id": "1"},
    "wiki_lingua": {"source": "Fill the pot. Boil the water.", "target": "Boil water in a pot.", "gem_id": "g"},
}
EXPECTED = {  # task -> (prompt, target)
    "paper_cb": ("It rains. question: It is wet. Is it true or false or neither? answer:", "Neither"),
    "paper_wic": ("A river bank. A bank loan. question: The word bank is used in the same way in the two sentences."
                  " Is it true or false? answer:", "False"),
    "paper_rte": ("Anna has a dog. question: Anna has a pet. Is it true or false? answer:", "True"),
    "paper_triviaqa": ("Q: Who wrote Hamlet? A:", ["Shakespeare", "William Shakespeare"]),
    "paper_webqs": ("Q: what is the capital of france? A:", ["Paris"]),
    "paper_wmt16_en_de": ("Translate English to German: Hello world.\nGerman:", "Hallo Welt."),
    "paper_wmt16_en_ro": ("Translate English to Romanian: Hello world.\nRomanian:", "Salut lume."),
    "paper_wmt14_en_fr": ("Translate English to French: Hello world.\nFrench:", "Bonjour le monde."),
    "paper_xsum": ("Article: The cat sat on the mat all day long. One sentence summary:", "A cat sat on a mat."),
    "paper_wikilingua_en": ("Article: Fill the pot. Boil the water. One sentence summary:", "Boil water in a pot."),
}


def test_paper_templates_on_fake_docs(monkeypatch):
    def fake_download(self, dataset_kwargs=None, **kwargs):
        key = self.config.dataset_name or self.config.dataset_path.split("/")[-1]
        doc = FAKE[key]
        self.dataset = datasets.DatasetDict({s: datasets.Dataset.from_list([doc] * 3)
                                             for s in ("train", "validation", "test")})

    monkeypatch.setattr(ConfigurableTask, "download", fake_download)
    tm = TaskManager(include_path=str(suite_dir("paper")), include_defaults=False)
    tasks = tm.load(["paper", "paper_target"])["tasks"]
    assert set(tasks) == set(EXPECTED)
    for name, (prompt, target) in EXPECTED.items():
        task, doc = tasks[name], tasks[name].test_docs()[0]
        assert (task.doc_to_text(doc), task.doc_to_target(doc)) == (prompt, target), name
        assert task.config.metadata["answer_format"], name
    assert tasks["paper_xsum"].process_results(FAKE["xsum"], [" A cat sat on a mat."]) == {"rouge2": 1.0}
    assert tasks["paper_triviaqa"].process_results(FAKE["rc.nocontext"], [" william shakespeare."])["exact_match"] == 1
    out = lm_eval.simple_evaluate(model=DummyLM(), tasks=["paper", "paper_target"], num_fewshot=1, limit=1,
                                  task_manager=tm)
    res = out["results"]
    assert res["paper_rte"]["exact_match,first_word"] == 0.0 and "bleu,none" in res["paper_wmt14_en_fr"]
    assert "rouge2,none" in res["paper_wikilingua_en"]


def test_only_fine_tuning_targets_are_marked():
    """promot eval keeps tasks marked `fine_tuning_target` out of Norm. Avg. and leakage: only the targets."""
    marked = {p.stem for p in SUITES_DIR.glob("*/*.yaml")
              if (load_yaml(p).get("metadata") or {}).get("fine_tuning_target")}
    assert marked == {"mini_has_a", "mini_has_a_qa", "mini_has_a_chat", "paper_rte", "paper_wmt14_en_fr",
                      "world_true_false", "world_brackets"}


def test_world_suite_scores_gold_and_uses_the_world_separator():
    from promot.world.tasks import ICL_TASKS

    tm = TaskManager(include_path=str(suite_dir("world")), include_defaults=False)
    world = [f"world_{n}" for n in ICL_TASKS]
    out = lm_eval.simple_evaluate(model=OracleWorldLM(), tasks=["world", "world_target"], num_fewshot=3, limit=2,
                                  task_manager=tm, log_samples=True)
    res = out["results"]
    assert all(res[t]["exact_match,none"] == 1.0 for t in [*world, "world_true_false", "world_brackets", "world"])
    prompt = out["samples"]["world_reverse"][0]["arguments"][0][0]
    assert prompt.count(" ; ") == 3 and prompt.startswith("in: ") and prompt.endswith("out:")
    assert out["samples"]["world_reverse"][0]["arguments"][0][1]["until"] == [";"]


class OracleWorldLM(DummyLM):
    def generate_until(self, requests, disable_tqdm: bool = False):
        return [f" {r.doc['answer']} " for r in requests]
