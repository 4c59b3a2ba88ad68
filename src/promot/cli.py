"""`promot` command line: a thin map from argv to the library. `main` parses, sets up logging, looks the
subcommand up in `HANDLERS` and turns errors into one line and exit code 2; each handler is one library call
(promot.api, evaluate/, report/, world/) and its printing."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promot import rundir
from promot.config import METHODS
from promot.config_docs import config_help
from promot.distributed import is_main_process
from promot.errors import Interrupted, PromotError
from promot.evaluate.spec import add_eval_options, spec_from_args
from promot.options import (DebugEverywhere, OneLineParser, csv, lr_list, parse_with_late_overrides, positive_int,
                            seed_list, verbose_flag)
from promot.progress import set_up_logging
from promot.world.cli import add_world_commands, run_world_command
from promot.world.demo import METHODS as DEMO_METHODS

EPILOG = "Bad input prints one line naming the file/field and exits 2; add --debug for the traceback."


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="promot", epilog=EPILOG,
        description="Fine-tune Hugging Face LMs with ProMoT: prompt tuning (model frozen), then model tuning with "
        "that prompt attached and frozen, so the task's format stays in the removable prompt.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = DebugEverywhere(p.add_subparsers(dest="command", required=True))

    t = sub.add_parser("train", help=f"train one method ({', '.join(METHODS)}) from a YAML config",
                       epilog=config_help(EPILOG),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", help="YAML run config (see examples/)")
    t.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="dotted overrides, values parsed as YAML, e.g. method=finetune stage2.lr=3e-5")
    verbose_flag(t)
    t.add_argument("--resume", metavar="RUN", help="continue a run that died from its last complete checkpoint "
                   "(same config; the result equals an uninterrupted run's)")
    t.add_argument("--accelerate-config", metavar="NAME|FILE", help="run under `accelerate launch` with a "
                   "preset (ddp, fsdp2, zero2, zero3) or your own accelerate config file")
    t.add_argument("--num-processes", type=positive_int, metavar="N", help="processes to launch (default: the "
                   "preset's, 2); alone it means --accelerate-config ddp")

    e = sub.add_parser("eval", help="base vs tuned (with and without the prompt) on lm-eval tasks: scores, "
                       "Norm. Avg., deltas, format leakage, flips → RUN/eval.json", epilog=EPILOG)
    e.add_argument("runs", nargs="*", help="run directories (their base model is evaluated once, as `base`)")
    e.add_argument("--base", help="base model (default: the runs' own base model)")
    add_eval_options(e)
    verbose_flag(e)
    e.add_argument("--out", help="where the base-only result goes when no run is given (default ./eval-base)")

    sub.add_parser("lm-eval", help="lm-eval's CLI with `--model promot --model_args run=RUN,prompt=on|off` "
                   "available; every other argument is lm_eval's", add_help=False)
    r = sub.add_parser("report", help="HTML page + Markdown: scores, deltas, leakage, the monitor's curve, "
                       "trade-off plot and flipped examples", epilog=EPILOG)
    r.add_argument("runs", nargs="+", help="run directories (after `promot eval` for ICL scores)")
    r.add_argument("--out", default="report", help="output folder (default ./report)")
    r.add_argument("--base", action=argparse.BooleanOptionalAction, default=True,
                   help="show the base model's column and deltas against it (default on)")

    d = sub.add_parser("demo", help="the ICL world: every method on a True/False target from the shipped tiny "
                       "model, evaluated and reported (offline, minutes on 2 CPU cores)")
    d.add_argument("--out", default="runs/demo", help="where runs and the report go (default runs/demo)")
    d.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated methods")
    verbose_flag(d)
    d.add_argument("--quick", action="store_true", help="tiny budget: checks the pipeline, not the effect")
    d.add_argument("--seeds", type=seed_list, help="comma-separated seeds, e.g. 0,1,2: every method once per seed; "
                   "the report sums each method up over its seeds, with 95%% intervals over seeds and items")
    d.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides for every method's run "
                   "(see `promot train --help` for the keys), e.g. stage2.lr=3e-4")
    c = sub.add_parser("compare", help="which method keeps most ICL at the target score: train every method on "
                       "CONFIG's data and budget, evaluate base and each with CIs, one report with the forgetting "
                       "frontier", epilog=EPILOG)
    c.add_argument("config", help="YAML run config (its method and output_dir are set per method)")
    c.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides for every method's run")
    c.add_argument("--methods", required=True, help="comma-separated methods, e.g. finetune,promot,lora,wise-ft,"
                   "replay (replay methods need the config's `replay:` data)")
    c.add_argument("--out", default="runs/compare", help="runs go to OUT/<method>, the report to OUT/report")
    c.add_argument("--seeds", type=seed_list, help="comma-separated seeds, e.g. 0,1,2: every method once per seed "
                   "(OUT/<method>/seed-<s>); the report gives each method's mean over seeds with 95%% intervals over "
                   "seeds and items. Finished runs with the same config are reused, unfinished ones resumed")
    c.add_argument("--lr-sweep", type=lr_list, metavar="LR,LR,…", help="comma-separated stage-2 learning rates, "
                   "e.g. 1e-5,3e-5,1e-4: every method once per lr (and seed), at OUT/<method>-lr<LR>, each its own "
                   "point of the frontier (set as the method's own lr: lora.lr for LoRA, else stage2.lr)")
    add_eval_options(c)
    verbose_flag(c)
    dg = sub.add_parser("diagnose", help="training diagnostics")
    dsub = DebugEverywhere(dg.add_subparsers(dest="diagnostic", required=True))
    ga = dsub.add_parser("gradient-alignment", help="plain fine-tune on CONFIG's task, logging the cosine between "
                         "the gradients on real and on shuffled labels per module of the last block (paper §3.3)")
    ga.add_argument("config", help="YAML run config (its data, model and stage2 settings are used)")
    ga.add_argument("overrides", nargs="*", metavar="key.sub=value")
    verbose_flag(ga)
    ga.add_argument("--every", type=positive_int, default=25, help="measure every N steps (default 25, and at step 0)")
    add_world_commands(sub)
    g = sub.add_parser("generate", help="continue a text with a trained run, with or without its prompt",
                       epilog=EPILOG)
    g.add_argument("run", help="run directory written by `promot train`")
    g.add_argument("text", nargs="+", help="input text(s); each is continued separately")
    on = g.add_mutually_exclusive_group()
    on.add_argument("--prompt", dest="with_prompt", action="store_const", const=True, default=None,
                    help="attach the run's soft prompt (the fine-tuned task's format; default when the run has one; "
                    "a run without one is refused)")
    on.add_argument("--no-prompt", dest="with_prompt", action="store_false",
                    help="bare tuned model (the ProMoT way for every other task)")
    g.add_argument("--max-new-tokens", type=positive_int, default=32, help="tokens to generate (default 32)")
    g.add_argument("--prompt-name", help="use an earlier run's prompt this run carries (sequential training: "
                   "prompts/<name>/) instead of its own")
    x = sub.add_parser("export", help="the tuned model as a plain HF directory for any inference server: every "
                       "prompt as added special tokens, picked per request by prefix or chat_template_kwargs",
                       epilog=EPILOG)
    x.add_argument("run", help="run directory written by `promot train`")
    x.add_argument("--out", help=f"output directory (default RUN/{rundir.EXPORT})")
    x.add_argument("--overwrite", action="store_true", help="replace an earlier export at --out")
    s = sub.add_parser("serve", help="export (or reuse RUN's export), then `transformers serve` on it",
                       epilog=EPILOG)
    s.add_argument("run", help="run directory written by `promot train`")
    s.add_argument("--out", help=f"export directory (default RUN/{rundir.EXPORT})")
    s.add_argument("--overwrite", action="store_true", help="re-export over an existing --out")
    s.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    s.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    return p


def _train(args) -> None:
    from promot import api

    if args.resume and (args.config or args.overrides):
        raise PromotError("--resume continues the run with its own config: no config file or overrides")
    if not args.resume and not args.config:
        raise PromotError("train needs a config file, or --resume RUN")
    run = api.resume(args.resume) if args.resume else api.train(args.config, args.overrides)
    if is_main_process():
        print("\n".join([*api.summary(run), str(run)]))
        guard = rundir.read_run_info(run).guard
        if guard is not None and not guard.held:  # the last line says it: nothing ships quietly collapsed
            print(f"{run}: {guard.describe()}")


def _eval(args) -> None:
    from promot.evaluate.runner import evaluate, summary_lines

    for path in evaluate(args.runs, spec_from_args(args), args.base, args.out):
        print("\n".join([*summary_lines(path), str(path)]))


def _report(args) -> None:
    from promot.report.render import render

    print(render(args.runs, args.out, args.base))


def _compare(args) -> None:
    from promot.compare import compare

    _print_comparison(*compare(args.config, csv(args.methods), spec_from_args(args), args.out, args.overrides,
                               args.seeds, args.lr_sweep))


def _demo(args) -> None:
    from promot.world.demo import DemoSettings, run_demo

    _print_comparison(*run_demo(DemoSettings(out=Path(args.out), methods=tuple(csv(args.methods)),
                                             quick=args.quick, seeds=args.seeds,
                                             overrides=tuple(args.overrides))))


def _print_comparison(runs: list[Path], report: Path) -> None:
    from promot.report.frontier import console_comparison

    print("\n".join([*console_comparison(runs), str(report)]))


def _diagnose(args) -> None:
    from promot import api
    from promot.report.tables import alignment_table, load_runs

    run = api.diagnose_gradient_alignment(args.config, args.overrides, args.every)
    for row in alignment_table(load_runs([run])):
        print("".join(f"{c:>10}" for c in row[1:]))
    print(run)


def _generate(args) -> None:
    from promot import api

    for text in api.generate(args.run, args.text, args.with_prompt, args.max_new_tokens, args.prompt_name):
        print(text)


def _export(args) -> None:
    from promot.serving import PREFIXES_FILE, export

    done = export(args.run, args.out, args.overwrite)
    for note in done.notes:
        print(note)
    for task, prefix in done.tasks.items():
        print(f"task {task}: {prefix}")
    print(f"{done.path}  (prefixes: {done.path / PREFIXES_FILE})")


def _serve(args) -> None:
    from promot.serving.serve import serve

    code = serve(args.run, args.out, args.host, args.port, args.overwrite)
    if code:
        raise SystemExit(code)


HANDLERS = {"train": _train, "eval": _eval, "report": _report, "compare": _compare, "demo": _demo, "serve": _serve,
            "diagnose": _diagnose, "world": run_world_command, "generate": _generate, "export": _export}
"""Subcommand → handler(args). A new subcommand: a parser block in `_parser`, a handler, an entry here."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lm-eval"]:
        from promot.evaluate.lm_eval_cli import lm_eval_cli

        return lm_eval_cli(argv[1:])
    try:
        args = parse_with_late_overrides(_parser(), argv)
    except SystemExit as e:  # --help (0), or argparse's one-line error (2): a code, as every other outcome
        return e.code if isinstance(e.code, int) else 2
    launched = args.command == "train" and (args.accelerate_config or args.num_processes is not None)
    if not launched:
        set_up_logging(args.debug, getattr(args, "verbose", False), args.command != "train" or is_main_process())
    try:
        if launched:  # this very command again, under `accelerate launch`
            from promot.distributed import relaunch

            return relaunch(argv, args.accelerate_config, args.num_processes)
        HANDLERS[args.command](args)
    except KeyboardInterrupt:
        print("promot: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from promot.io import disk_full, is_disk_full

        if args.debug or not (isinstance(e, (PromotError, OSError)) or is_disk_full(e)):
            raise
        if is_disk_full(e) and not isinstance(e, PromotError):  # a write no promot save site caught
            e = disk_full(getattr(e, "filename", None) or ".", 0)
        print(f"promot: {_one_line(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    return 0


def _one_line(e: Exception) -> str:
    """Interrupted (SIGTERM/SIGINT): its line says how to resume; an OSError (disk full, permission denied, ...): the
    system's own words, and where; any other: the error's line."""
    if isinstance(e, Interrupted):
        return str(e)
    if isinstance(e, OSError):
        return f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}"
    return f"error: {e}"


if __name__ == "__main__":
    sys.exit(main())
