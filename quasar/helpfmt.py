"""The help formatter of every ``quasar`` command: defaults shown, hand-wrapped text kept.

* An option's default is appended to its help as ``(default: X)`` unless the help already speaks of
  its default, or there is nothing to show (``None``, a flag's ``False``).
* A description or epilog written with line breaks (tables, exit codes) is printed as written; one
  written as a single paragraph is wrapped to the terminal, as argparse does.
"""

from __future__ import annotations

import argparse

from quasar.errors import QuasarError


class HelpFormatter(argparse.HelpFormatter):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower()
                or action.default is None or action.default is False or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def apply_formatter(parser: argparse.ArgumentParser, formatter=HelpFormatter) -> None:
    """Give ``parser`` and all its sub-command parsers ``formatter``."""
    parser.formatter_class = formatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                apply_formatter(sub, formatter)


def positive_int(v: str) -> int:
    """argparse type: an integer of at least 1 (every ``quasar`` command's counts and sizes)."""
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_workload_options(p: argparse.ArgumentParser, *, count_help: str, repeat_help: str,
                         repeat_default: int | None = None) -> None:
    """The workload options every measuring command shares (``quasar bench``, ``quasar perf``): one
    spelling and one meaning each. ``--count N``: how many images the measurement uses; ``--repeat R``:
    how many times each timed configuration runs (interleaved, medians reported). Both are
    :func:`positive_int`; each command says in ``count_help`` what its images are."""
    p.add_argument("--count", type=positive_int, default=None, metavar="N", help=count_help)
    p.add_argument("--repeat", type=positive_int, default=repeat_default, metavar="R", help=repeat_help)


def non_negative_int(v: str) -> int:
    """argparse type: an integer of at least 0 (counts that may be zero, e.g. --min-replicas)."""
    n = int(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {n}")
    return n


def positive_float(v: str) -> float:
    """argparse type: a number above 0 (timeouts)."""
    x = float(v)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {x}")
    return x


def non_negative_float(v: str) -> float:
    """argparse type: a number of at least 0 (waits, limits)."""
    x = float(v)
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {x}")
    return x


def parse_hw(text: str, flag: str, minimum: int = 1, maximum: int | None = None,
             example: str = "384x512") -> tuple[int, int]:
    """``"384x512"`` -> (384, 512): height x width in pixels, each side in ``minimum..maximum``; a one-line
    QuasarError naming ``flag`` otherwise. The one parser of every HxW option (``--static``,
    ``--opt-size``, ``--synthetic``)."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise QuasarError(f"{flag} must look like {example} (height x width), not {text!r}") from None
    if h < minimum or w < minimum or (maximum is not None and (h > maximum or w > maximum)):
        bounds = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
        raise QuasarError(f"{flag} {text}: each side must be {bounds} pixels")
    return h, w
