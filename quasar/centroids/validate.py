"""Pack validation in one place: what every loaded (or saved, or exported) centroid pack must satisfy.

:func:`validate_pack` checks the numbers: the pack's own structure rules (:meth:`CentroidPack.validate`:
heads, names, shapes), then, generically over every head kind, every centroid array finite with a
non-zero norm (a zero centroid has no direction, so its cosine is undefined), and every logit scale
finite with 0 < s <= ``MAX_LOGIT_SCALE`` (1000; calibrated scales are about 10..100, CLIP's is 100).
:func:`check_content_hash` makes the content hash required: a pack without one is refused unless
the caller passes ``allow_unhashed=True`` (CLI: ``--allow-unhashed``) for hand-made packs.
:func:`read_pack_json` caps the file size before reading (``MAX_PACK_BYTES``, 64 MiB: the default pack
is 16 KB; a pack of 1000 heads of dimension 1280 is about 14 MB). Every problem is a
:class:`~quasar.centroids.pack.PackError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np

from quasar.limits import MAX_LOGIT_SCALE, MAX_PACK_BYTES


def _error(msg: str):
    from quasar.centroids.pack import PackError

    return PackError(msg)


def validate_pack(pack, source: str = "<pack>") -> None:
    """Raise PackError (naming ``source``) unless every head's arrays and scale are usable."""
    from quasar.centroids.pack import PackError

    if not isinstance(pack.encoder, str) or not pack.encoder.strip():
        raise _error(f"{source}: the encoder id must be a non-empty string, not {pack.encoder!r}")
    if not isinstance(pack.heads, list):
        raise _error(f"{source}: heads must be a list")
    for h in pack.heads:
        if not isinstance(h.name, str) or not h.name:
            raise _error(f"{source}: a head name must be a non-empty string, not {h.name!r}")
        for field in ("aggregation", "anchors"):
            if not isinstance(getattr(h, field, {}), dict):
                raise _error(f"{source}: head {h.name!r}: {field} must be an object")
    try:
        pack.validate()
    except PackError as e:
        raise _error(f"{source}: {e}") from None
    for h in pack.heads:
        for name, value in vars(h).items():
            if isinstance(value, np.ndarray):
                _check_array(value, f"{source}: head {h.name!r}: {name}")
        scale = getattr(h, "logit_scale", None)
        if scale is not None:
            s = float(scale)
            if not (math.isfinite(s) and 0 < s <= MAX_LOGIT_SCALE):
                raise _error(f"{source}: head {h.name!r}: logit scale {scale!r} is outside the documented range "
                             f"0 < s <= {MAX_LOGIT_SCALE:g}")


def _check_array(a: np.ndarray, where: str) -> None:
    if a.size == 0:
        raise _error(f"{where} is empty")
    if not np.all(np.isfinite(a)):
        raise _error(f"{where} contains NaN or infinity")
    vectors = a.reshape(1, -1) if a.ndim <= 1 else a.reshape(-1, a.shape[-1])
    norms = np.linalg.norm(vectors.astype(np.float64), axis=-1)
    if not np.all(norms > 0):
        raise _error(f"{where} has zero norm (all zeros): a centroid needs a direction")


def check_content_hash(d: dict, pack, source: str, allow_unhashed: bool = False) -> None:
    """The stored ``content_hash`` must be present (unless ``allow_unhashed``) and match the content."""
    stored = d.get("content_hash")
    if stored is None or stored == "":
        if allow_unhashed:
            return
        raise _error(f"{source}: the pack has no content_hash, so corruption cannot be detected; "
                     "pass --allow-unhashed (allow_unhashed=True) to load a hand-made pack")
    if stored != pack.content_hash:
        raise _error(f"{source}: content hash mismatch (file says {stored}, content is {pack.content_hash}); "
                     "the file was edited or corrupted")


def read_pack_json(path: str | os.PathLike, max_bytes: int = MAX_PACK_BYTES):
    """The parsed JSON of a pack file, refusing before reading anything that is not a regular file of at
    most ``max_bytes``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _error(f"{path}: no such pack file") from None
    except OSError as e:
        raise _error(f"{path}: cannot read the pack ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(f"{path}: is a directory, not a pack file")
    if not stat.S_ISREG(st.st_mode):
        raise _error(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise _error(f"{path}: the file is {st.st_size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB "
                     "limit for a centroid pack")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise _error(f"{path}: cannot read the pack ({e.strerror or e})") from None
    if len(raw) > max_bytes:
        raise _error(f"{path}: the file grew past the {max_bytes / 2**20:.0f} MiB limit while being read")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _error(f"{path}: not a JSON centroid pack ({type(e).__name__}: {str(e)[:200]})") from None
