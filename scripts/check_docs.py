"""The `promot` commands README and the guides (docs/*.md) show, found once for the test and for a real run.

    python scripts/check_docs.py          # list every command, marking those that run as written (no placeholder)
    python scripts/check_docs.py --run    # run those, in order, from the repository root (offline: a demo and the
                                          # SmolLM2 example; ~10 min on 2 CPU cores), and say which failed

tests/test_docs.py parses every command with promot's own CLI parser (flags and subcommands exist as written); this
script runs the concrete ones end to end, which the default suite cannot afford.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "RESULTS.md")]
PATH_PREFIXES = ("docs/", "examples/", "bench/", "scripts/", "src/promot/", "tests/", ".ci/")
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*(\.yaml)?")


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(page: Path) -> list[str]:
    """Every `promot …` command the page shows to be run: each line of its ```bash blocks, and inline code that runs
    on a placeholder (`promot generate RUN …`) or a file of the repository (`promot train examples/…`). Inline
    mentions of a subcommand, and the bad input its tables show being refused, are not commands."""
    text = page.read_text()
    found = [part.strip() for block in fenced(text, "bash") for line in block.splitlines()
             for part in re.split(r"\s+#\s", line)[0].split("&&")]
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    found += [c for c in (" ".join(m.split()) for m in re.findall(r"`(promot [^`]+)`", prose))  # one line each
              if any(PLACEHOLDER.fullmatch(a) or (a.startswith(PATH_PREFIXES) and (ROOT / a).exists())
                     for a in c.split()[2:])]
    return [c for c in found if c.startswith("promot ")]


def argv_of(command: str) -> list[str] | None:
    """The synopsis as argv: optional `[…]` groups and `…` dropped, the first of `a | b` alternatives kept; None for
    `promot lm-eval` (lm-eval's own parser)."""
    text = command.replace("...", "…")
    while re.search(r"\[[^\[\]]*\]", text):
        text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
    text = text.replace("…", "").split(" | ")[0].strip()
    argv = shlex.split(text)[1:]
    return None if not argv or argv[0] == "lm-eval" else argv


def concrete(command: str) -> bool:
    """Whether it runs as written: no optional groups, alternatives or placeholders."""
    if any(mark in command for mark in ("[", "…", "...", " | ")):
        return False
    return not any(PLACEHOLDER.fullmatch(a) for a in shlex.split(command)[1:])


def all_commands() -> list[tuple[str, str]]:
    return [(p.relative_to(ROOT).as_posix(), c) for p in PAGES for c in commands(p)]


def main(run: bool) -> int:
    todo = list(dict.fromkeys(c for _, c in all_commands() if concrete(c)))
    for page, c in all_commands():
        print(f"{'run ' if c in todo else '    '} {page}: {c}")
    if not run:
        return 0
    failed = []
    for c in todo:
        start = time.perf_counter()
        rc = subprocess.run(shlex.split(c), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        print(f"{rc.returncode:>3}  {time.perf_counter() - start:6.1f} s  {c}", flush=True)
        if rc.returncode != 0:
            failed.append(c)
            print("     " + (rc.stderr.strip().splitlines() or ["(no message)"])[-1])
    print(f"{len(todo) - len(failed)} of {len(todo)} commands ran as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main("--run" in sys.argv[1:]))
