"""`promot world pretrain | export`: the ICL world's own commands, wired into the CLI by `promot.cli`."""
from __future__ import annotations

from dataclasses import replace

from promot.options import DebugEverywhere, positive_int


def add_world_commands(sub) -> None:
    w = sub.add_parser("world", help="the ICL world: re-create the shipped model or the `world` eval suite")
    wsub = DebugEverywhere(w.add_subparsers(dest="world_command", required=True))
    wp = wsub.add_parser("pretrain", help="pretrain the world model from scratch on k-shot episodes "
                         "(the shipped one: default settings, ~15 min on 2 CPU cores)")
    wp.add_argument("--out", default="runs/world-pretrain",
                    help="output model directory (replaces an earlier world model, nothing else)")
    wp.add_argument("--steps", type=positive_int, help="optimizer steps (default: the shipped model's)")
    we = wsub.add_parser("export", help="write the `world` lm-eval suite (YAML + JSONL)")
    we.add_argument("--out", help="folder (default: promot's own suites/world)")


def run_world_command(args) -> None:
    if args.world_command == "pretrain":
        from promot.world.pretrain import PretrainConfig, pretrain

        cfg = PretrainConfig() if args.steps is None else replace(PretrainConfig(), steps=args.steps)
        info = pretrain(args.out, cfg)
        for k, acc in info["icl_accuracy"].items():
            print(f"{k}-shot ICL accuracy {acc['mean']:.3f}")
        print(args.out)
    else:
        from promot.evaluate.suites import SUITES_DIR
        from promot.world.export import export_suite

        files = export_suite(args.out or SUITES_DIR / "world")
        print(f"{len(files)} files in {files[0].parent}")
