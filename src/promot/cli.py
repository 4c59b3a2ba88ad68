"""`promot` command line: argv → one promot.api call. No logic here; errors become one line and exit code 2."""
from __future__ import annotations

import argparse
import logging
import sys

from promot.errors import PromotError

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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="promot", epilog=EPILOG,
        description="Fine-tune Hugging Face LMs with ProMoT: prompt tuning (model frozen), then model tuning with "
        "that prompt attached and frozen, so the task's format stays in the removable prompt.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one method (promot, finetune, prompt-tuning, joint, random-prompt, "
                       "lora, promot-lora) from a YAML config", epilog=_config_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", help="YAML run config (see examples/)")
    t.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="dotted overrides, values parsed as YAML, e.g. method=finetune stage2.lr=3e-5")

    g = sub.add_parser("generate", help="continue a text with a trained run, with or without its prompt",
                       epilog=EPILOG)
    g.add_argument("run", help="run directory written by `promot train`")
    g.add_argument("text", nargs="+", help="input text(s); each is continued separately")
    on = g.add_mutually_exclusive_group()
    on.add_argument("--prompt", dest="with_prompt", action="store_true", default=True,
                    help="attach the run's soft prompt (the fine-tuned task's format; default)")
    on.add_argument("--no-prompt", dest="with_prompt", action="store_false",
                    help="bare tuned model (the ProMoT way for every other task)")
    g.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate (default 32)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    if not args.debug:
        for noisy in ("transformers", "peft", "accelerate", "datasets", "httpx", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # weight-loading bars; training keeps its own progress bar
    try:
        from promot import api

        if args.command == "train":
            run = api.train(args.config, args.overrides)
            for line in api.summary(run):
                print(line)
            print(run)
        elif args.command == "generate":
            for text in api.generate(args.run, args.text, args.with_prompt, args.max_new_tokens):
                print(text)
    except PromotError as e:
        if args.debug:
            raise
        print(f"promot: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("promot: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
