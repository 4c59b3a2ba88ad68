"""`promot` command line: a thin map from argv to the library. `main` parses, sets up logging, looks the
subcommand up in `HANDLERS` and turns errors into one line and exit code 2; each handler is one library call
(promot.api, evaluate/, report/, world/) and its printing."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from promot import rundir
from promot.config import METHODS
from promot.distributed import is_main_process
from promot.errors import Interrupted, PromotError
from promot.options import OneLineParser, non_negative_int, positive_int, shot_counts
from promot.progress import set_verbose

EPILOG = "Bad input prints one line naming the file/field and exits 2; add --debug for the traceback."


def _config_help() -> str:
    from promot.config import describe

    lines = ["config keys (YAML or key.sub=value; default in brackets):"]
    for key, default, doc in describe():
        if default is None and "." not in key and not doc:
            continue
        shown = "" if default is None and "." not in key else f" [{default!r}]"
        lines.append(f"  {key}{shown}" + (f"  {doc}" if doc else ""))
    return "\n".join([*lines, "", EPILOG])


def _debug_parent() -> argparse.ArgumentParser:
    """`--debug` after the subcommand too (every error says "add --debug"); SUPPRESS keeps a top-level one set."""
    parent = OneLineParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    return parent


class _DebugEverywhere:
    """A subparsers action whose every parser also accepts `--debug`."""

    def __init__(self, action) -> None:
        self._action = action

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        if kwargs.get("add_help", True):
            kwargs["parents"] = [*kwargs.get("parents", []), _debug_parent()]
        return self._action.add_parser(name, **kwargs)


def _parse(argv: list[str]) -> argparse.Namespace:
    """argparse, plus `key=value` overrides after options (`train CFG --resume R a=b`, `diagnose … --every 5 a=b`):
    argparse takes positionals in one run, so later ones come back unparsed and are appended here."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    late = [a for a in rest if "=" in a and not a.startswith("-")]
    if rest != late or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if late:
        args.overrides = [*(args.overrides or []), *late]
    return args


def _verbose_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true", help="the libraries' own output too: Trainer's and "
                   "lm-eval's progress bars and logs (default: one progress line per training stage / eval variant)")


def _eval_options(p: argparse.ArgumentParser) -> None:
    """What to evaluate and how: shared by `eval` and `compare` (evaluate.runner.spec_from_options takes them)."""
    p.add_argument("--tasks", default="mini", help="comma-separated lm-eval tasks/groups/tags (default: mini, "
                   "the offline suite); `paper` is the paper's eight tasks (needs their datasets)")
    p.add_argument("--suite", help="a shipped suite (mini, world, paper): its ICL tasks and its fine-tuning targets "
                   "(<suite>_target), instead of --tasks")
    p.add_argument("--target-task", default="", help="comma-separated tasks in the fine-tuned format: the "
                   "headline target, kept out of Norm. Avg. and leakage (e.g. mini_has_a; default: the suite's "
                   "fine-tuning targets whose data the run trained on)")
    p.add_argument("--shots", type=shot_counts, default="1,4", help="comma-separated shot counts (default 1,4)")
    p.add_argument("--target-shots", type=non_negative_int, default=0,
                   help="shots for the target tasks, scored as trained (default 0, as in the paper)")
    p.add_argument("--limit", type=positive_int, help="at most this many items per task")
    p.add_argument("--include-path", action="append", help="extra folder of lm-eval task YAMLs (repeatable)")
    p.add_argument("--labels", help="comma-separated label set of the fine-tuned format, for leakage "
                   "(default: the run's training targets)")
    p.add_argument("--format-regex", help="regex an answer in the fine-tuned format matches (instead of --labels)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default="auto",
                   help="bf16 autocast (default: auto, where this machine runs bf16 natively; else fp32)")
    p.add_argument("--apply-chat-template", action="store_true",
                   help="each request in the tokenizer's chat template (lm-eval's option; for instruct models)")
    p.add_argument("--fewshot-as-multiturn", action="store_true",
                   help="with --apply-chat-template: each exemplar its own user/assistant turn (lm-eval's option)")
    p.add_argument("--bootstrap", type=non_negative_int, default=1000,
                   help="paired-bootstrap resamples for the 95%% CIs of every delta and leakage (0: none)")


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="promot", epilog=EPILOG,
        description="Fine-tune Hugging Face LMs with ProMoT: prompt tuning (model frozen), then model tuning with "
        "that prompt attached and frozen, so the task's format stays in the removable prompt.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = _DebugEverywhere(p.add_subparsers(dest="command", required=True))

    t = sub.add_parser("train", help=f"train one method ({', '.join(METHODS)}) from a YAML config",
                       epilog=_config_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", nargs="?", help="YAML run config (see examples/)")
    t.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="dotted overrides, values parsed as YAML, e.g. method=finetune stage2.lr=3e-5")
    _verbose_flag(t)
    t.add_argument("--resume", metavar="RUN", help="continue a run that died from its last complete checkpoint "
                   "(same config; the result equals an uninterrupted run's)")
    t.add_argument("--accelerate-config", metavar="NAME|FILE", help="run under `accelerate launch` with a "
                   "preset (ddp, fsdp2, zero2, zero3) or your own accelerate config file")
    t.add_argument("--num-processes", type=positive_int, metavar="N", help="processes to launch (default: the preset's, "
                   "2); alone it means --accelerate-config ddp")

    e = sub.add_parser("eval", help="base vs tuned (with and without the prompt) on lm-eval tasks: scores, "
                       "Norm. Avg., deltas, format leakage, flips → RUN/eval.json", epilog=EPILOG)
    e.add_argument("runs", nargs="*", help="run directories (their base model is evaluated once, as `base`)")
    e.add_argument("--base", help="base model (default: the runs' own base model)")
    _eval_options(e)
    _verbose_flag(e)
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
    d.add_argument("--methods", default=",".join(_demo_methods()), help="comma-separated methods")
    _verbose_flag(d)
    d.add_argument("--quick", action="store_true", help="tiny budget: checks the pipeline, not the effect")
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
    c.add_argument("--seeds", type=_seeds, help="comma-separated seeds, e.g. 0,1,2: every method once per seed "
                   "(OUT/<method>/seed-<s>); the report gives each method's mean over seeds with 95%% intervals over "
                   "seeds and items. Finished runs with the same config are reused, unfinished ones resumed")
    _eval_options(c)
    _verbose_flag(c)
    dg = sub.add_parser("diagnose", help="training diagnostics")
    dsub = _DebugEverywhere(dg.add_subparsers(dest="diagnostic", required=True))
    ga = dsub.add_parser("gradient-alignment", help="plain fine-tune on CONFIG's task, logging the cosine between "
                         "the gradients on real and on shuffled labels per module of the last block (paper §3.3)")
    ga.add_argument("config", help="YAML run config (its data, model and stage2 settings are used)")
    ga.add_argument("overrides", nargs="*", metavar="key.sub=value")
    _verbose_flag(ga)
    ga.add_argument("--every", type=positive_int, default=25, help="measure every N steps (default 25, and at step 0)")
    w = sub.add_parser("world", help="the ICL world: re-create the shipped model or the `world` eval suite")
    wsub = _DebugEverywhere(w.add_subparsers(dest="world_command", required=True))
    wp = wsub.add_parser("pretrain", help="pretrain the world model from scratch on k-shot episodes "
                         "(the shipped one: default settings, ~15 min on 2 CPU cores)")
    wp.add_argument("--out", default="runs/world-pretrain", help="output model directory")
    wp.add_argument("--steps", type=positive_int, help="optimizer steps (default: the shipped model's)")
    we = wsub.add_parser("export", help="write the `world` lm-eval suite (YAML + JSONL)")
    we.add_argument("--out", help="folder (default: promot's own suites/world)")
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
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s = sub.add_parser("serve", help="export (or reuse RUN's export), then `transformers serve` on it",
                       epilog=EPILOG)
    s.add_argument("run", help="run directory written by `promot train`")
    s.add_argument("--out", help=f"export directory (default RUN/{rundir.EXPORT})")
    s.add_argument("--overwrite", action="store_true", help="re-export over an existing --out")
    s.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    return p


def _demo_methods() -> tuple[str, ...]:
    from promot.world.demo import METHODS

    return METHODS


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None


def lm_eval_cli(argv: list[str]) -> int:
    """`promot lm-eval ARGS`: lm-eval's own CLI with the `promot` model registered (0.4.x has no plugin hook)."""
    import promot.evaluate.lm_eval_model  # noqa: F401  (registers --model promot)
    from lm_eval.__main__ import cli_evaluate

    _with_shipped_suites()
    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
    return 0


def _with_shipped_suites() -> None:
    """Make lm-eval's TaskManager also index promot's suites (mini, world, paper) under any user --include_path:
    its CLI takes a single path, so the suites are added where the manager is built (user paths listed last win)."""
    import lm_eval.tasks as tasks

    from promot.evaluate.suites import SUITES_DIR

    base = tasks.TaskManager
    if getattr(base, "promot_suites", False):
        return

    class WithSuites(base):
        promot_suites = True

        def __init__(self, *args, include_path=None, **kwargs):
            given = list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
            given = [str(p) for p in given if p and str(p) != str(SUITES_DIR)]
            super().__init__(*args, include_path=[str(SUITES_DIR), *given], **kwargs)

    tasks.TaskManager = WithSuites


_LAUNCH_FLAGS = ("--accelerate-config", "--num-processes")


def _launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Re-run this very command under `accelerate launch`, minus the launch flags; returns its exit code."""
    import subprocess

    from promot.distributed import launch_command

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _LAUNCH_FLAGS:
            skip = True
        elif not a.startswith(tuple(f + "=" for f in _LAUNCH_FLAGS)):
            rest.append(a)
    if args.num_processes is not None and args.num_processes < 1:
        raise PromotError("--num-processes must be a positive integer")
    cmd = launch_command(args.accelerate_config or "ddp", args.num_processes or 2, rest)
    return subprocess.call(cmd)


def _train(args) -> None:
    from promot import api

    if args.resume and (args.config or args.overrides):
        raise PromotError("--resume continues the run with its own config: no config file or overrides")
    if not args.resume and not args.config:
        raise PromotError("train needs a config file, or --resume RUN")
    run = api.resume(args.resume) if args.resume else api.train(args.config, args.overrides)
    if is_main_process():
        for line in api.summary(run):
            print(line)
        print(run)


def _spec(args):
    """`_eval_options` → EvalSpec (checked before anything runs)."""
    from promot.evaluate.runner import spec_from_options

    return spec_from_options(
        tasks=args.tasks, suite=args.suite, shots=args.shots, target_tasks=args.target_task,
        target_shots=args.target_shots, limit=args.limit, include_path=args.include_path, labels=args.labels,
        format_regex=args.format_regex, batch_size=args.batch_size, bf16=args.bf16,
        apply_chat_template=args.apply_chat_template, fewshot_as_multiturn=args.fewshot_as_multiturn,
        bootstrap=args.bootstrap)


def _eval(args) -> None:
    from promot.evaluate.runner import evaluate, summary_lines

    spec = _spec(args)
    for path in evaluate(args.runs, spec, args.base, args.out):
        for line in summary_lines(path):
            print(line)
        print(path)


def _report(args) -> None:
    from promot.report.render import render

    print(render(args.runs, args.out, args.base))


def _compare(args) -> None:
    from promot.compare import compare

    _print_comparison(*compare(args.config, _csv(args.methods), _spec(args), args.out, args.overrides, args.seeds))


def _demo(args) -> None:
    from promot.world.demo import DemoSettings, run_demo

    _print_comparison(*run_demo(DemoSettings(out=Path(args.out), methods=tuple(_csv(args.methods)),
                                             quick=args.quick, overrides=tuple(args.overrides))))


def _print_comparison(runs: list[Path], report: Path) -> None:
    """The monitor's curves, the score table, the frontier's headline and table, the report's path."""
    from promot.report.frontier import console_frontier
    from promot.report.tables import console_curves, console_summary, load_runs

    views = load_runs(runs)
    for line in [*console_curves(views), "", *console_summary(views), "", *console_frontier(views)]:
        print(line)
    print(report)


def _diagnose(args) -> None:
    from promot import api
    from promot.report.tables import alignment_table, load_runs

    run = api.diagnose_gradient_alignment(args.config, args.overrides, args.every)
    for row in alignment_table(load_runs([run])):
        print("".join(f"{c:>10}" for c in row[1:]))
    print(run)


def _world(args) -> None:
    from dataclasses import replace

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


HANDLERS = {"train": _train, "eval": _eval, "report": _report, "compare": _compare, "demo": _demo,
            "diagnose": _diagnose, "world": _world, "generate": _generate, "export": _export, "serve": _serve}
"""Subcommand → handler(args). A new subcommand: a parser block in `_parser`, a handler, an entry here."""


def _set_up_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    if args.command == "train" and not is_main_process():
        logging.getLogger().setLevel(logging.WARNING)  # one progress story, told by the main process
    verbose = args.debug or getattr(args, "verbose", False)
    set_verbose(verbose)
    if not verbose:
        for noisy in ("transformers", "peft", "accelerate", "datasets", "httpx", "huggingface_hub", "lm_eval",
                      "lm-eval", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight-loading bars; each stage and eval variant gets one line instead


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lm-eval"]:
        return lm_eval_cli(argv[1:])
    try:
        args = _parse(argv)
    except SystemExit as e:  # --help (0), or argparse's one-line error (2): a code, as every other outcome
        return e.code if isinstance(e.code, int) else 2
    if args.command == "train" and (args.accelerate_config or args.num_processes is not None):
        try:  # this very command again, under `accelerate launch`
            return _launch(args, argv)
        except PromotError as e:
            print(f"promot: error: {e}", file=sys.stderr)
            return 2
    _set_up_logging(args)
    try:
        HANDLERS[args.command](args)
    except Interrupted as e:  # SIGTERM/SIGINT: checkpoint written, the line says how to resume
        if args.debug:
            raise
        print(f"promot: {e}", file=sys.stderr)
        return e.exit_code
    except PromotError as e:
        if args.debug:
            raise
        print(f"promot: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permission denied, ...: the system's own words, and where
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"promot: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promot: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
