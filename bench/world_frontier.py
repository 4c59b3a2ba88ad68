"""ProMoT's target against the ICL it keeps, for every world grid on disk: is there a setting off the trade-off?

Reads the runs `bench/world_seeds.py` leaves (OUT/<kernel>/promot/seed-*/eval.json) under each directory of
--root, and prints one row per (grid, kernel): the evaluated target score (with the prompt, as the report scores
it), ICL Norm.Avg ÷ base at 1 and 4 shots, and the largest leakage, means over the seeds found. No run is made.

    python bench/world_frontier.py --root runs/world-grid --json bench/world_frontier.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from promot.errors import CheckpointError
from promot.eval_record import BASE, TUNED, read_eval


def seed_row(run: Path) -> dict:
    """One ProMoT seed's evaluated target (with its prompt), ICL ratios to base and 1-shot leakage."""
    try:
        ev = read_eval(run)
        tuned, base = ev.summary(TUNED, "k=1"), ev.summary(BASE, "k=1")
        tuned4, base4 = ev.summary(TUNED, "k=4"), ev.summary(BASE, "k=4")
        target = next(s.target_score for k in ev.shot_keys if (s := ev.serving(k)) and s.target_score is not None)
        return {"seed": int(run.name.removeprefix("seed-")), "target_task": ev.target_tasks[0], "target": target,
                "ratio1": tuned.norm_avg / base.norm_avg, "ratio4": tuned4.norm_avg / base4.norm_avg,
                "leak1": None if tuned.leakage is None else 100 * tuned.leakage}
    except CheckpointError as err:  # half-written or foreign: the message names the file
        raise ValueError(str(err)) from err
    except (StopIteration, AttributeError, IndexError) as err:  # no target score, or no 1- and 4-shot variants
        raise ValueError(f"{run / 'eval.json'}: not a world grid's eval record (no target, base or tuned "
                         f"1- and 4-shot scores)") from err


def grid_rows(root: Path) -> list[dict]:
    """One row per grid directory and kernel that holds finished ProMoT seeds."""
    rows = []
    for grid in sorted(p for p in root.iterdir() if p.is_dir()):
        for kernel_dir in sorted(p for p in grid.iterdir() if (p / "promot").is_dir()):
            seeds = [seed_row(run) for run in sorted((kernel_dir / "promot").glob("seed-*"))
                     if (run / "eval.json").is_file()]
            if not seeds:
                continue
            leaks = [s["leak1"] for s in seeds if s["leak1"] is not None]
            rows.append({"grid": grid.name, "kernel": kernel_dir.name, "target_task": seeds[0]["target_task"],
                         "seeds": [s["seed"] for s in seeds],
                         "target": statistics.mean(s["target"] for s in seeds),
                         "target_min": min(s["target"] for s in seeds),
                         "ratio1": statistics.mean(s["ratio1"] for s in seeds),
                         "ratio4": statistics.mean(s["ratio4"] for s in seeds),
                         "max_leak1": max(leaks) if leaks else None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("runs/world-grid"), help="the directory of grids")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if not args.root.is_dir():
        print(f"world_frontier: --root {args.root}: not a directory", file=sys.stderr)
        sys.exit(2)
    try:
        rows = grid_rows(args.root)
    except (OSError, ValueError) as err:
        print(f"world_frontier: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{'grid':18s} {'kernel':8s} {'target task':18s} {'seeds':10s} {'target':>6s} {'min':>6s} "
          f"{'×base 1':>7s} {'×base 4':>7s} {'leak1':>5s}")
    for r in rows:
        leak = "    –" if r["max_leak1"] is None else f"{r['max_leak1']:5.1f}"
        print(f"{r['grid']:18s} {r['kernel']:8s} {r['target_task']:18s} {','.join(map(str, r['seeds'])):10s} "
              f"{r['target']:6.1f} {r['target_min']:6.1f} {r['ratio1']:7.3f} {r['ratio4']:7.3f} {leak}")
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.{os.getpid()}.tmp")  # a reader never sees half a file
        try:
            tmp.write_text(json.dumps(rows, indent=1) + "\n")
            tmp.replace(args.json)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            print(f"world_frontier: --json {args.json}: {err.strerror}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
