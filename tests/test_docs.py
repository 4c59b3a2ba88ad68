"""README and the guides match the tree: README stays short, every file and link they name exists, every `promot`
command they show parses with the CLI as written, and README's Python calls bind to the API's signatures. What can
run offline in seconds (`--help`) runs."""
from __future__ import annotations

import ast
import inspect
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "RESULTS.md")
PAGES = [README, *GUIDES]
PATH_PREFIXES = ("docs/", "examples/", "bench/", "scripts/", "src/promot/", "tests/", ".ci/")


def _fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(page: Path) -> list[str]:
    """Every `promot …` command the page shows to be run: each line of its ```bash blocks, and inline code that runs
    on a file of the repository (`promot train examples/has_a/promot.yaml`). Inline mentions of a subcommand, or of
    bad input a table shows being refused, are not commands."""
    text = page.read_text()
    found = [re.split(r"\s+#\s", line)[0].strip() for block in _fenced(text, "bash") for line in block.splitlines()]
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("|"))  # tables show refusals
    found += [c for c in re.findall(r"`(promot [^`]+)`", prose)
              if any(re.fullmatch(r"[A-Z][A-Z_]*(\.yaml)?", a) or (a.startswith(PATH_PREFIXES) and (ROOT / a).exists())
                     for a in c.split()[2:])]
    return [c for c in found if c.startswith("promot ")]


def _runnable(command: str) -> list[str] | None:
    """The synopsis as argv: optional `[…]` groups and `…` dropped, the first of `a | b` alternatives kept; None for
    `promot lm-eval` (lm-eval's own parser) and `promot --help` style one-liners with shell syntax."""
    text = command.replace("...", "…").replace("\\\n", " ")
    while re.search(r"\[[^\[\]]*\]", text):
        text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
    text = text.replace("…", "").split(" | ")[0].split("&&")[0].strip()
    argv = shlex.split(text)[1:]
    return None if not argv or argv[0] == "lm-eval" else argv


def _all_commands() -> list[tuple[str, str]]:
    return [(p.relative_to(ROOT).as_posix(), c) for p in PAGES for c in _commands(p)]


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


@pytest.mark.parametrize("page,command", _all_commands())
def test_every_promot_command_parses_as_written(page, command, capsys):
    from promot.cli import _parser
    from promot.options import parse_with_late_overrides

    argv = _runnable(command)
    if argv is None:
        return
    try:
        parse_with_late_overrides(_parser(), argv)
    except SystemExit as e:
        assert e.code == 0, f"{page}: `{command}` does not parse: {capsys.readouterr().err.strip()}"


def test_the_commands_were_found_and_help_runs(capsys):
    from promot.cli import main

    commands = [c for _, c in _all_commands()]
    assert len(commands) > 20 and any(c.startswith("promot demo") for c in commands)
    assert main(["--help"]) == 0 and main(["train", "--help"]) == 0
    assert "stage2.lr" in capsys.readouterr().out  # every config key is listed


def test_readmes_python_binds_to_the_api():
    """Each call to promot's API in README's Python block binds to the real signature (the calls are not run)."""
    import promot
    from promot.evaluate import runner
    from promot.runs import LoadedRun

    api = {"train": promot.train, "load_run": promot.load_run, "compare": promot.compare,
           "evaluate": runner.evaluate, "spec_from_options": runner.spec_from_options, "generate": LoadedRun.generate}
    (block,) = _fenced(README.read_text(), "python")
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
