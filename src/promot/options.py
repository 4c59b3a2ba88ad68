"""Command-line option values, declared once: each is an argparse `type=` (a bad value is argparse's one-line error,
exit 2, before anything runs) and is what `evaluate.runner.spec_from_options` checks API callers' values with.
No heavy imports: `promot --help` stays fast."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence


def _int(text: object, low: int, what: str) -> int:
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    try:
        value = int(text) if isinstance(text, int) else int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
    return value


def positive_int(text: object) -> int:
    """An integer >= 1 (--limit, --batch-size, --every, --max-new-tokens, --num-processes, --steps)."""
    return _int(text, 1, "a positive integer")


def non_negative_int(text: object) -> int:
    """An integer >= 0 (--target-shots, --bootstrap)."""
    return _int(text, 0, "an integer >= 0")


def shot_counts(text: object) -> list[int]:
    """`--shots 0,1,4`: comma-separated integers >= 0, each once, at least one."""
    parts = text.split(",") if isinstance(text, str) else list(text) if isinstance(text, Sequence) else [text]
    parts = [p.strip() if isinstance(p, str) else p for p in parts]
    parts = [p for p in parts if p != ""]
    if not parts:
        raise argparse.ArgumentTypeError("must be comma-separated shot counts (integers >= 0), e.g. 0,1,4")
    shots = [_int(p, 0, "comma-separated shot counts, integers >= 0") for p in parts]
    if len(set(shots)) != len(shots):
        raise argparse.ArgumentTypeError(f"must name each shot count once, got {text!r}")
    return shots


def check(name: str, parse: Callable[[object], object], value: object) -> object:
    """`parse(value)` for an API caller: a bad value raises ConfigError naming the option (`--limit: ...`)."""
    from promot.errors import ConfigError

    try:
        return parse(value)
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"{name}: {e}") from None


def finite(value: object) -> bool:
    """A real number (not a bool), neither NaN nor ±inf: `1e309` parses as inf and is refused."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (`promot: error: argument --limit: ...`) like every other bad input,
    exit 2; `--help` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"promot: error: {message} (see `{self.prog} --help`)\n")


def csv(text: str) -> list[str]:
    """`a, b,,c` → ['a', 'b', 'c']."""
    return [t.strip() for t in text.split(",") if t.strip()]


def seed_list(text: str) -> list[int]:
    """`--seeds 0,1,2`: comma-separated integers."""
    try:
        return [int(s) for s in csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None


def lr_list(text: str) -> list[float]:
    """`--lr-sweep 1e-5,3e-5,1e-4`: comma-separated learning rates, each a positive finite number, each once."""
    import math

    try:
        lrs = [float(s) for s in csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated learning rates, got {text!r}") from None
    if not lrs:
        raise argparse.ArgumentTypeError("name at least one learning rate")
    if bad := [x for x in lrs if not (math.isfinite(x) and x > 0)]:
        raise argparse.ArgumentTypeError(f"learning rates must be positive finite numbers, got {bad[0]:g}")
    if len(set(lrs)) != len(lrs):
        raise argparse.ArgumentTypeError(f"name each learning rate once, got {text!r}")
    return lrs


def _debug_parent() -> argparse.ArgumentParser:
    """`--debug` after the subcommand too (every error says "add --debug"); SUPPRESS keeps a top-level one set."""
    parent = OneLineParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    return parent


class DebugEverywhere:
    """A subparsers action whose every parser also accepts `--debug`."""

    def __init__(self, action) -> None:
        self._action = action

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        if kwargs.get("add_help", True):
            kwargs["parents"] = [*kwargs.get("parents", []), _debug_parent()]
        return self._action.add_parser(name, **kwargs)


def verbose_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true", help="the libraries' own output too: Trainer's and "
                   "lm-eval's progress bars and logs (default: one progress line per training stage / eval variant)")


def parse_with_late_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, plus `key=value` overrides after options (`train CFG --resume R a=b`, `diagnose … --every 5 a=b`):
    argparse takes positionals in one run, so later ones come back unparsed and are appended here."""
    args, rest = parser.parse_known_args(argv)
    late = [a for a in rest if "=" in a and not a.startswith("-")]
    if rest != late or (late and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if late:
        args.overrides = [*(args.overrides or []), *late]
    return args
