"""The help formatter of every ``quasar`` command: defaults shown, hand-wrapped text kept.

* An option's default is appended to its help as ``(default: X)`` unless the help already speaks of
  its default, or there is nothing to show (``None``, a flag's ``False``).
* A description or epilog written with line breaks (tables, exit codes) is printed as written; one
  written as a single paragraph is wrapped to the terminal, as argparse does.
"""

from __future__ import annotations

import argparse


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
