"""Building an encoder for a command, with open_clip's pretrained tags explained in one line.

``open_clip:<arch>@<tag>`` (``openai``, ``laion2b_s34b_b79k``, ...) downloads the weights from the
Hugging Face hub; offline, open_clip retries for about a minute, logs ``ERROR:root`` and raises a
paragraph. :func:`build_encoder` keeps the loggers quiet during the attempt and turns the failure
into one :class:`~quasar.errors.QuasarError` that says a tag needs network access and a checkpoint
path works offline. Checkpoint paths and the other encoder families are built as they are.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from quasar.encoders.registry import create_encoder, parse_encoder_id
from quasar.errors import QuasarError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def pretrained_tag(encoder_id: str) -> tuple[str, str] | None:
    """``(arch, tag)`` when ``encoder_id`` names open_clip weights by tag rather than by a file path."""
    eid = parse_encoder_id(encoder_id)
    w = eid.weights
    if eid.family != "open_clip" or not w:
        return None
    if "/" in w or os.sep in w or w.lower().endswith(CHECKPOINT_SUFFIXES) or os.path.exists(w):
        return None
    return eid.name, w


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """No log records at all while inside (open_clip logs on the root logger, the hub client on its
    own); the root logger's handlers and level are restored after (``logging.error`` installs one)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        root.handlers[:] = handlers
        root.setLevel(level)


def _is_download_failure(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, OSError) or "download" in text or "hub" in text or "connection" in text


def build_encoder(encoder_id: str, spec=None):
    """:func:`~quasar.encoders.registry.create_encoder`, but an open_clip tag that is unknown or cannot
    be downloaded raises one QuasarError naming the offline alternative (a checkpoint path)."""
    tag = pretrained_tag(encoder_id)
    if tag is None:
        return create_encoder(encoder_id, spec)
    arch, name = tag
    offline = f"offline, pass a checkpoint file instead: open_clip:{arch}@/path/to/checkpoint.pt"
    try:
        import open_clip

        known = open_clip.list_pretrained_tags_by_model(arch)
    except Exception:
        known = None
    if known is not None and name not in known:
        shown = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
        raise QuasarError(f"encoder {encoder_id!r}: {name!r} is neither a pretrained tag of {arch} "
                          f"({shown or 'none known'}) nor an existing checkpoint file")
    with quiet_logging():
        try:
            return create_encoder(encoder_id, spec)
        except Exception as e:
            if not _is_download_failure(e):
                raise
            raise QuasarError(f"encoder {encoder_id!r}: the pretrained tag {name!r} needs network access to "
                              f"download its weights from the hub, and the download failed; {offline}") from None
