"""``quasar score``'s progress bar: on stderr only, never mixed with rows, with a total when it is cheap.

The bar is shown only when stderr is a terminal, and not when the rows themselves go to that
terminal (``-o -`` with stdout a terminal): a bar redrawn between CSV rows garbles both. Its total
(and so its ETA) comes from :func:`count_inputs`, a listing-only walk of the named folders that
gives up (total unknown) after ``cap`` directory entries or ``seconds``, so a huge or slow tree
never delays the first score by much.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable

from quasar.runtime.sources import IMAGE_EXTENSIONS

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
                 seconds: float = COUNT_SECONDS) -> int | None:
    """How many rows scoring ``paths`` will give (as :func:`quasar.runtime.sources.iter_items` lists
    them), less those ``skip`` says are done; None when the walk exceeds ``cap`` entries or ``seconds``.

    Nothing is opened or decoded: one ``os.scandir`` per directory. A folder with no images counts
    one (its error row), like an unreadable one.
    """
    deadline = time.monotonic() + seconds
    seen_entries = 0
    total = 0

    def keep(path: str) -> int:
        return 0 if skip is not None and skip(path) else 1

    def walk(d: str, ancestors: tuple, seen: set) -> tuple[int, int]:
        """(files kept, files found) under ``d``."""
        nonlocal seen_entries
        try:
            st = os.stat(d)
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                return 1, 1  # a symlink loop: one error row
            if key in seen:
                return 0, 0
            seen.add(key)
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            return 1, 1  # an unreadable directory: one error row
        kept = found = 0
        subdirs = []
        for e in entries:
            seen_entries += 1
            if seen_entries > cap or (seen_entries % 1024 == 0 and time.monotonic() > deadline):
                raise _GiveUp
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(e.path)
            elif os.path.splitext(e.name)[1].lower() in extensions:
                found += 1
                kept += keep(e.path)
        if recursive:
            for sub in subdirs:
                k, f = walk(sub, ancestors + (key,), seen)
                kept, found = kept + k, found + f
            if time.monotonic() > deadline:
                raise _GiveUp
        return kept, found

    try:
        for p in paths:
            if not os.path.isdir(p):
                total += keep(p)
                continue
            kept, found = walk(p, (), set())
            total += kept if found else keep(p)  # the "no image files in it" row
    except _GiveUp:
        return None
    return total


def make_bar(total: int | None, enabled: bool):
    """A tqdm bar on stderr (disabled: a no-op bar with the same methods)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="scoring", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
