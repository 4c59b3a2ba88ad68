"""README and the guides match the tree: README stays short, every file and link they name exists, every `promot`
command they show parses with the CLI as written, and README's Python calls bind to the API's signatures. What can
run offline in seconds (`--help`) runs."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "RESULTS.md")]
PATH_PREFIXES = ("docs/", "examples/", "bench/", "scripts/", "src/promot/", "tests/", ".ci/")


def _check_docs():
    """scripts/check_docs.py: finds the commands once, for this test and for running them."""
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCS = _check_docs()


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_and_link_a_page_names_exists(page):
    text = page.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):  # markdown links
        if "://" not in target and not (page.parent / target).exists():
            missing.append(target)
    for token in re.findall(r"`([^`\s]+)`", text):  # repository paths in inline code
        path = token.rstrip(".,:;)").split("::")[0]
        if path.startswith(PATH_PREFIXES) and not any(c in path for c in "*<>{}…|") and \
                not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.name} names what the tree does not have: {missing}"


@pytest.mark.parametrize("page,command", DOCS.all_commands())
def test_every_promot_command_parses_as_written(page, command, capsys):
    from promot.cli import _parser
    from promot.options import parse_with_late_overrides

    argv = DOCS.argv_of(command)
    if argv is None:
        return
    try:
        parse_with_late_overrides(_parser(), argv)
    except SystemExit as e:
        assert e.code == 0, f"{page}: `{command}` does not parse: {capsys.readouterr().err.strip()}"


def test_the_commands_were_found_and_help_runs(capsys):
    from promot.cli import main

    commands = [c for _, c in DOCS.all_commands()]
    assert len(commands) > 20 and "promot demo" in commands and "promot train examples/has_a/promot.yaml" in commands
    assert DOCS.concrete("promot demo") and not DOCS.concrete("promot eval RUN --suite mini")
    assert main(["--help"]) == 0 and main(["train", "--help"]) == 0
    assert "stage2.lr" in capsys.readouterr().out  # every config key is listed


def test_readmes_python_binds_to_the_api():
    """Each call to promot's API in README's Python block binds to the real signature (the calls are not run)."""
    import promot
    from promot.evaluate import runner
    from promot.runs import LoadedRun

    api = {"train": promot.train, "load_run": promot.load_run, "compare": promot.compare,
           "evaluate": runner.evaluate, "spec_from_options": runner.spec_from_options, "generate": LoadedRun.generate}
    (block,) = DOCS.fenced(README.read_text(), "python")
    calls = [n for n in ast.walk(ast.parse(block)) if isinstance(n, ast.Call)]
    bound = 0
    for call in calls:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        if name not in api:
            continue
        sig = inspect.signature(api[name])
        args = [None] * (len(call.args) + (name == "generate"))  # a method: self
        sig.bind(*args, **{k.arg: None for k in call.keywords})  # TypeError on a wrong name or count
        bound += 1
    assert bound >= 5
