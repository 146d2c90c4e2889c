"""``quasar score``'s progress bar: on stderr only, never mixed with rows, with a total when it is cheap.

The bar is shown only when stderr is a terminal, and not when the rows themselves go to that
terminal (``-o -`` with stdout a terminal): a bar redrawn between CSV rows garbles both. Its total
(and so its ETA) comes from :func:`count_inputs`, a listing-only walk of the named folders that
gives up (total unknown) after ``cap`` directory entries or ``seconds``, so a huge or slow tree
never delays the first score by much.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from quasar.runtime.sources import IMAGE_EXTENSIONS, iter_path

COUNT_CAP = 200_000  # directory entries looked at before the total is given up as unknown
COUNT_SECONDS = 2.0


def progress_enabled(output: str, quiet: bool = False) -> bool:
    """Whether to draw a bar: stderr is a terminal, and rows do not go to a terminal on stdout."""
    if quiet or not _isatty(sys.stderr):
        return False
    return not (output == "-" and _isatty(sys.stdout))


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _GiveUp(Exception):
    pass


def count_inputs(paths: Iterable[str], recursive: bool, extensions: frozenset[str] = IMAGE_EXTENSIONS,
                 skip: Callable[[str], bool] | None = None, cap: int = COUNT_CAP,
                 seconds: float = COUNT_SECONDS, follow_links: bool = False) -> int | None:
    """How many rows scoring ``paths`` will give, less those whose label ``skip`` says are done;
    None when the walk lists more than ``cap`` directory entries or takes over ``seconds``.

    The rows are :func:`quasar.runtime.sources.iter_path`'s items, listed by the same walk that
    scoring uses (error rows included: a folder with no images, a symlink loop, an unreadable
    directory), so the total always matches. Nothing is opened or decoded.
    """
    deadline = time.monotonic() + seconds
    listed = 0

    def budget(n_entries: int) -> None:
        nonlocal listed
        listed += n_entries
        if listed > cap or time.monotonic() > deadline:
            raise _GiveUp

    total = 0
    try:
        for p in paths:
            for item in iter_path(p, recursive, extensions, on_listing=budget, follow_links=follow_links):
                total += 0 if skip is not None and skip(item.label) else 1
    except _GiveUp:
        return None
    return total


def make_bar(total: int | None, enabled: bool):
    """A tqdm bar on stderr (disabled: a no-op bar with the same methods)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="scoring", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
