"""A real-model `promot compare`, timed whole with the greedy pool and without it (every caller: eval, selection,
the guard, the monitor's probes), one process each, one after the other; the scores of the two must agree.

    python bench/compare_pool.py examples/has_a/promot.yaml --methods finetune,promot --tasks mini,mini_target \
        --target-task mini_target --shots 1 --limit 20 --out runs/compare-pool --json bench/compare_pool_has_a.json

Without the pool every greedy pass goes through HF `generate` in batches, as lm-eval's HFLM does (what promot did
before the pool); the rest of promot's evaluation (lm-eval built once per pass, datasets read once) is the same in
both, so the difference is the pool's alone.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

OFF = ("import promot.prompt.generate as g, promot.evaluate.lm_eval_model as m; "
       "g.supports = m.supports = lambda lm: False; ")


def run(config: str, args: list[str], out: Path, pool: bool) -> float:
    code = ("" if pool else OFF) + f"from promot.cli import main; main({['compare', config, *args, '--out', str(out)]!r})"
    started = time.time()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.time() - started


def scores(out: Path) -> dict:
    """Every run's eval.json variants (what the two passes must agree on, item counts and all)."""
    return {p.parent.name: json.loads(p.read_text())["variants"] for p in sorted(out.glob("*/eval.json"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--out", default="runs/compare-pool")
    ap.add_argument("--json")
    args, rest = ap.parse_known_args()
    times = {}
    for pool in (False, True):
        name = "pool" if pool else "no-pool"
        times[name] = round(run(args.config, rest, Path(args.out) / name, pool), 1)
        print(f"{name}: {times[name]} s", flush=True)
    same = scores(Path(args.out) / "pool") == scores(Path(args.out) / "no-pool")
    out = {"command": " ".join(sys.argv), "seconds": times, "ratio": round(times["no-pool"] / times["pool"], 2),
           "scores identical": same}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
