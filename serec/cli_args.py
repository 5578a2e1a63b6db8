"""Argument helpers shared by every ``serec`` subcommand: common options, checked value types,
and the one place a subcommand parser is made (so each has ``-v``/``-q`` and help text)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``serec <cmd>: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


COMMON = argparse.ArgumentParser(add_help=False)
_output = COMMON.add_argument_group("output")
_output.add_argument("-v", "--verbose", action="store_true",
                     help="log more (INFO) and print tracebacks on errors")
_output.add_argument("-q", "--quiet", action="store_true",
                     help="no progress reports; warnings and errors only")


def add_command(sub: argparse._SubParsersAction, name: str, help_text: str,
                func: Callable[[argparse.Namespace], int] | None = None,
                prog_name: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser with the common options and defaults shown in ``--help``."""
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=[COMMON],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(command_name=prog_name or name)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def run_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True,
                        help="run directory (local path, NFS or s3://, gs://)")


def config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="YAML config (path, or a name in configs/; default local.yaml)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def _number(kind: Callable[[str], Any], text: str, name: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {name}, got {text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""
    def parse(text: str) -> int:
        value = _number(int, text, "an integer")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    value = _number(float, text, "a number")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {value}")
    return value


def real(text: str) -> float:
    """An argparse type: any finite number."""
    value = _number(float, text, "a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive(text: str) -> float:
    """An argparse type: a number > 0."""
    value = real(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def split_args(parser: argparse.ArgumentParser, folds_default: int) -> None:
    """``--folds``, ``--test-fraction``, ``--group`` and ``--seed`` of a split."""
    from serec.train.splits import DEFAULT_GROUP, NO_GROUP

    parser.add_argument("--folds", type=int_at_least(2), default=folds_default,
                        help="number of validation folds")
    parser.add_argument("--test-fraction", type=fraction, default=0.15,
                        help="share of groups held out as the test set (0: no test set)")
    parser.add_argument("--group", default=",".join(DEFAULT_GROUP),
                        help="comma-separated manifest columns; clips sharing a value in any "
                             f"of them stay in one part ('{NO_GROUP}': each clip on its own)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
