"""Turn what the user passes (paths, folders, bytes, arrays, lists of those) into a lazy item stream.

Everything is a generator: a folder of 100,000 files is listed one directory at a time and never
held as a list, so the pipeline's memory stays bounded. Problems found while listing (a directory
symlink loop, an unreadable directory) become items that carry an error, so they are reported like
any unreadable file instead of aborting the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quasar.io.files import IMAGE_EXTENSIONS
from quasar.runtime.inputs import foreign_images


@dataclass(frozen=True)
class Item:
    """One input. Exactly one of ``path``, ``data``, ``array`` or ``error`` is set."""

    label: str  # what the output row shows: the path as given/joined, or "<bytes 3>", "<array 0>"
    path: str | None = None
    data: bytes | bytearray | memoryview | None = None
    array: np.ndarray | None = None
    error: str | None = None
    array_order: str = "RGB"


def iter_items(inputs, recursive: bool = False, extensions: frozenset[str] = IMAGE_EXTENSIONS,
               follow_links: bool = False) -> Iterator[Item]:
    """Flatten ``inputs`` lazily into items.

    ``inputs`` is a path (str/PathLike; a folder is listed, recursively with ``recursive``), bytes,
    a numpy image (HxW[xC]; uint8, uint16 or float 0..1) or batch (NxHxWxC), a PIL image, a torch
    tensor (CHW or an NCHW batch, float 0..1 as pyiqa takes them; see :mod:`quasar.runtime.inputs`),
    or any iterable of those. ``follow_links``: see :func:`walk_folder`.
    """
    counters = {"bytes": 0, "array": 0}
    yield from _expand(inputs, recursive, extensions, counters, top=True, follow_links=follow_links)


def _expand(x, recursive: bool, extensions, counters: dict, top: bool, follow_links: bool = False) -> Iterator[Item]:
    if isinstance(x, Item):
        yield x
    elif isinstance(x, (str, os.PathLike)):
        yield from iter_path(os.fspath(x), recursive, extensions, follow_links=follow_links)
    elif isinstance(x, (bytes, bytearray, memoryview)):
        yield Item(f"<bytes {counters['bytes']}>", data=x)
        counters["bytes"] += 1
    elif isinstance(x, np.ndarray):
        for a in (x if x.ndim == 4 else (x,)):
            yield Item(f"<array {counters['array']}>", array=a)
            counters["array"] += 1
    elif (images := foreign_images(x)) is not None:  # PIL images, torch tensors (quasar.runtime.inputs)
        for kind, a, error in images:
            k = counters.get(kind, 0)
            counters[kind] = k + 1
            yield Item(f"<{kind} {k}>", array=a) if error is None else Item(f"<{kind} {k}>", error=error)
    elif top and isinstance(x, Iterable) and not isinstance(x, Mapping):
        for y in x:
            yield from _expand(y, recursive, extensions, counters, top=False, follow_links=follow_links)
    else:
        raise TypeError(f"cannot score a {type(x).__name__}: pass paths, bytes, numpy arrays, PIL images, "
                        "torch tensors or a list of them")


def iter_path(path: str, recursive: bool = False, extensions: frozenset[str] = IMAGE_EXTENSIONS,
              on_listing: Callable[[int], None] | None = None, follow_links: bool = False) -> Iterator[Item]:
    """A file path as one item (even if missing: the error is reported per file); a folder's images.

    Every path named explicitly yields at least one item: a folder with no image files in it (a
    folder called ``photos.jpg/``, an empty folder, sub-folders only without ``recursive``) yields
    one error item saying so, instead of silently contributing nothing. ``on_listing`` and
    ``follow_links``: see :func:`walk_folder`.
    """
    if not os.path.isdir(path):
        yield Item(path, path=path)
        return
    empty = True
    for item in walk_folder(path, recursive, extensions, on_listing, follow_links):
        empty = False
        yield item
    if empty:
        hint = "" if recursive else "; use -r (recursive=True) to include sub-folders"
        yield Item(path, error=f"is a directory with no image files in it{hint}")


def walk_folder(root: str, recursive: bool, extensions: frozenset[str] = IMAGE_EXTENSIONS,
                on_listing: Callable[[int], None] | None = None, follow_links: bool = False) -> Iterator[Item]:
    """Image files under ``root`` in sorted order, one directory listing in memory at a time.

    Symlinked files are read. A symlinked sub-folder is followed only when its target is inside
    ``root`` (resolved: ``root``'s own real folder or below it), so a link to ``/`` or to another
    user's tree cannot make a scan walk the whole disk; with ``follow_links`` every symlinked
    folder is followed. Each real directory is listed once either way: a symlink back to one of its
    own ancestors (a loop) yields an error item naming the link; a second route to an already
    listed directory is skipped silently, so no file is scored twice. ``on_listing`` is called with the
    number of entries of each directory as it is listed (the progress bar's cheap count uses it to
    give up on huge trees by raising).
    """
    seen: set[tuple[int, int]] = set()
    real_root = os.path.realpath(root)

    def inside_root(link: str) -> bool:
        target = os.path.realpath(link)
        return target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep)

    def listdir(d: str, ancestors: tuple[tuple[int, int], ...]) -> Iterator[Item]:
        try:
            st = os.stat(d)
        except OSError as e:
            yield Item(d, error=f"cannot open directory: {e.strerror}")
            return
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield Item(d, error=f"directory symlink loop (points back to {os.path.realpath(d)}); not followed")
            return
        if key in seen:
            return
        seen.add(key)
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Item(d, error=f"cannot list directory: {e.strerror}")
            return
        if on_listing is not None:
            on_listing(len(entries))
        subdirs = []
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if follow_links or not e.is_symlink() or inside_root(e.path):
                    subdirs.append(e.path)
            elif Path(e.name).suffix.lower() in extensions:
                yield Item(e.path, path=e.path)
        if recursive:
            for sub in subdirs:
                yield from listdir(sub, ancestors + (key,))

    yield from listdir(root, ())
