"""The shipped default model's provenance, and reproducing it on another machine.

``python -m quasar.export.default --ship`` exports the shipped pack into ``quasar/data`` and writes
``default_quality.provenance.json`` beside the model (:func:`write_provenance`): the model's sha256
and size, the pack's content hash, the versions of Python, torch, onnx, onnxruntime and numpy that
exported it, and the *anchor subset*: a few of the pack's anchors (its first ``SUBSET_PHOTOS``
recorded photos, pristine and with ``SUBSET_VARIANTS``), embedded fresh (no cache), each recorded as
the sha256 of its float32 embedding (an exact check on the same machine and libraries), its margins
under the pack's heads and its projections on ``PROJECTIONS`` seeded random directions (checks to
``TOLERANCE`` anywhere). Rebuilding the full pack embeds 12,600 anchors (about 30 min on 2 cores); the
subset takes seconds, so CI checks it on a fresh machine (tests/test_default_pack.py).

``python -m quasar.export.default --reproduce`` (:func:`reproduce`) is the one command that checks the
whole chain here: it rebuilds the pack from its anchor photos and compares it with the shipped pack,
exports it and compares the export's scores with the shipped model's, re-embeds the anchor subset,
and prints the versions that differ from the recorded ones. What may differ between machines: the
``.onnx`` bytes and embeddings' low bits (other CPUs, BLAS kernels, torch or onnx versions:
floating-point summation order); scores within 1e-6 and the pack within ``compare_packs``' 1e-4 are
required, byte equality is reported but not required.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from quasar.constants import SHIPPED_PROVENANCE
from quasar.errors import QuasarError

PROVENANCE = SHIPPED_PROVENANCE  # beside the shipped model in quasar/data
SUBSET_PHOTOS = 3
SUBSET_VARIANTS: tuple[tuple[str | None, int], ...] = (
    (None, 0), ("gaussian_blur", 3), ("white_noise", 2), ("jpeg", 4), ("darken", 5), ("color_saturation_1", 3))
PROJECTIONS, PROJECTION_SEED = 16, 0
TOLERANCE = 1e-4  # on unit-embedding projections and head margins
SCORE_TOLERANCE = 1e-6
LIBRARIES = ("torch", "onnx", "onnxruntime", "numpy")


def provenance_path(model_path: str | os.PathLike) -> str:
    return str(Path(model_path).with_name(PROVENANCE))


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("quasar-engine", *LIBRARIES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["machine"] = platform.machine()
    return out


def subset_anchors(pack, photos=None) -> list[tuple[str, object]]:
    """The anchor subset as (photo name, Anchor): the pack's first recorded photos, pristine and with
    each subset variant."""
    from quasar.centroids.anchors import Anchor
    from quasar.centroids.families import OVERALL_HEAD

    names = pack.head(OVERALL_HEAD).anchors["provenance"]["photos"][:SUBSET_PHOTOS]
    if photos is None:
        from quasar.photos import fetch_photos

        photos = fetch_photos()
    by_name = {p.name: p.path for p in photos}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise QuasarError(f"anchor photos {', '.join(missing)} are not in the photo set "
                          "(python -m quasar.photos fetches them)")
    return [(n, Anchor(by_name[n], "good" if d is None else "bad", distortion=d, level=lvl))
            for n in names for d, lvl in SUBSET_VARIANTS]


def _directions(dim: int) -> np.ndarray:
    rng = np.random.default_rng(PROJECTION_SEED)
    r = rng.standard_normal((PROJECTIONS, dim))
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def embed_subset(pack, photos=None) -> list[dict]:
    """The anchor subset embedded fresh (the build's encoder, no cache), one record per anchor."""
    from quasar.centroids.embed import Embedder
    from quasar.encoders import create_encoder

    named = subset_anchors(pack, photos)
    anchors = [a for _, a in named]
    emb, used, failed = Embedder(create_encoder(pack.encoder), use_cache=False, progress=False).embed(anchors)
    if failed or len(used) != len(anchors):
        raise QuasarError(f"anchor subset: {len(failed)} of {len(anchors)} anchors failed to embed")
    emb = np.asarray(emb, np.float32)
    unit = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    proj = unit @ _directions(emb.shape[1]).T
    _, margins = pack.score_embeddings(emb)
    name_of = {(a.path, a.distortion, a.level): n for n, a in named}  # the embedder may reorder
    rows = [{"photo": name_of[(a.path, a.distortion, a.level)], "distortion": a.distortion, "level": a.level,
             "sha256": hashlib.sha256(e.tobytes()).hexdigest(),
             "margins": [round(float(x), 7) for x in m], "projections": [round(float(x), 7) for x in p]}
            for a, e, m, p in zip(used, emb, margins, proj, strict=True)]
    order = {(n, a.distortion, a.level): i for i, (n, a) in enumerate(named)}
    return sorted(rows, key=lambda r: order[(r["photo"], r["distortion"], r["level"])])


def compare_subset(recorded: list[dict], fresh: list[dict], tol: float = TOLERANCE) -> tuple[list[str], int]:
    """(differences beyond ``tol``, how many embeddings are bit-identical)."""
    diffs, exact = [], 0
    key = lambda r: (r["photo"], r["distortion"], r["level"])  # noqa: E731
    got = {key(r): r for r in fresh}
    for r in recorded:
        f = got.get(key(r))
        tag = "/".join(str(x) for x in key(r))
        if f is None:
            diffs.append(f"{tag}: not embedded")
            continue
        exact += f["sha256"] == r["sha256"]
        for field in ("margins", "projections"):
            d = float(np.max(np.abs(np.subtract(f[field], r[field]))))
            if d > tol:
                diffs.append(f"{tag}: {field} differ by {d:.2g} (> {tol:g})")
    return diffs, exact


def write_provenance(model_path: str | os.PathLike, pack, command: str) -> str:
    """Record the exported model's provenance beside it (see the module docstring); returns the path."""
    from quasar.sidecars import file_sha256

    data = {
        "model": os.path.basename(model_path),
        "sha256": file_sha256(model_path),
        "bytes": os.path.getsize(model_path),
        "pack_content_hash": pack.content_hash,
        "exported_with": library_versions(),
        "command": command,
        "anchor_subset": {"photos": SUBSET_PHOTOS, "variants": [list(v) for v in SUBSET_VARIANTS],
                          "projections": {"count": PROJECTIONS, "seed": PROJECTION_SEED},
                          "tolerance": TOLERANCE, "anchors": embed_subset(pack)},
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    path = provenance_path(model_path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


def load_provenance(model_path: str | os.PathLike) -> dict:
    path = provenance_path(model_path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError:
        raise QuasarError(f"{path}: missing; `python -m quasar.export.default --ship` writes it") from None
    except ValueError as e:
        raise QuasarError(f"{path}: not JSON ({e})") from None


def _score_images(photos) -> list[bytes]:
    """9 test images as PNG bytes: 3 held-out photos, as they are, as JPEG q-level 3 and darkened."""
    import io

    from PIL import Image

    from quasar.centroids.distortions import distort
    from quasar.io import read_rgb

    out = []
    for p in [p for p in photos if p.split == "heldout"][:3]:
        img = read_rgb(p.path)
        for x in (img, distort(img, "jpeg", 3), distort(img, "darken", 4)):
            buf = io.BytesIO()
            Image.fromarray(x).save(buf, "PNG")
            out.append(buf.getvalue())
    return out


def compare_scores(a_path: str, b_path: str, images: list[bytes]) -> float:
    """Largest score difference between two fused models over ``images``, both run by ONNX Runtime on
    the same preprocessed pixels (the reference pipeline, :mod:`quasar.testing`; the export only
    changes the graph, so the runtime's decoding is not what is compared)."""
    import onnxruntime as ort

    from quasar.contract import INPUT_NAME, OUTPUT_NAMES
    from quasar.export.metadata import load_info
    from quasar.testing import reference_preprocess

    info_a, info_b = load_info(a_path), load_info(b_path)
    if info_a.heads != info_b.heads or info_a.spec != info_b.spec:
        return float("inf")
    sessions = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (a_path, b_path)]
    worst = 0.0
    for src in images:
        x = reference_preprocess(src, info_a.spec)[None]
        sa, sb = (s.run([OUTPUT_NAMES[0]], {INPUT_NAME: x})[0] for s in sessions)
        worst = max(worst, float(np.abs(sa - sb).max()))
    return worst


def reproduce(rebuild: bool = True, model: str | None = None) -> int:
    """Rebuild + re-export + compare (see the module docstring) against the shipped model, or against
    ``model`` (a ``--ship`` export elsewhere, with its provenance file beside it); prints a report,
    returns 0 (reproduced) or 1."""
    from quasar.centroids.default import build_default_pack, compare_packs
    from quasar.centroids.pack import CentroidPack
    from quasar.export.onnx_export import export_onnx
    from quasar.photos import fetch_photos
    from quasar.shipped import shipped_model_path
    from quasar.sidecars import file_sha256

    shipped_pack = CentroidPack.load("default")
    shipped = model or shipped_model_path(shipped_pack.content_hash)
    if shipped is None:
        raise QuasarError("quasar/data has no model exported from the shipped pack: "
                          "run `python -m quasar.export.default --ship`")
    prov = load_provenance(shipped)
    failures: list[str] = []
    if prov.get("sha256") != file_sha256(shipped):
        failures.append(f"{PROVENANCE}: the shipped model's sha256 is not the recorded one (re-run --ship)")
    photos = fetch_photos()
    pack = shipped_pack
    if rebuild:
        print("1/4 rebuilding the default pack from its anchor photos (cached embeddings are reused)", flush=True)
        pack, stats = build_default_pack(progress=False)
        diffs = compare_packs(pack, shipped_pack)
        print(f"    built in {stats['seconds']} s; " + ("identical within 1e-4" if not diffs else "; ".join(diffs)))
        failures += [f"pack: {d}" for d in diffs]
    else:
        print("1/4 pack rebuild skipped (--quick): exporting the shipped pack")
    print("2/4 exporting it and comparing scores with the shipped model", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = export_onnx(None, pack, os.path.join(tmp, "fresh.onnx"))
        same_bytes = file_sha256(fresh) == prov.get("sha256")
        worst = compare_scores(shipped, fresh, _score_images(photos))
    print(f"    largest score difference {worst:.2g} (required <= {SCORE_TOLERANCE:g}); "
          f"bytes {'identical' if same_bytes else 'differ (allowed: see docs/architecture.md)'}")
    if not worst <= SCORE_TOLERANCE:
        failures.append(f"scores differ by {worst:.2g}")
    print("3/4 re-embedding the anchor subset", flush=True)
    recorded = prov["anchor_subset"]["anchors"]
    diffs, exact = compare_subset(recorded, embed_subset(shipped_pack, photos))
    print(f"    {len(recorded) - len(diffs)} of {len(recorded)} anchors within {TOLERANCE:g}, "
          f"{exact} bit-identical")
    failures += [f"anchor subset: {d}" for d in diffs]
    print("4/4 library versions (recorded -> here)")
    here = library_versions()
    for k, v in prov.get("exported_with", {}).items():
        if here.get(k) != v:
            print(f"    {k}: {v} -> {here.get(k)}")
    for f in failures:
        print(f"FAILED: {f}")
    print("reproduced" if not failures else "not reproduced")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Entry for ``python -m quasar.export.reproduce [--quick]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m quasar.export.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the pack rebuild (re-export the shipped pack)")
    args = ap.parse_args(argv)
    try:
        return reproduce(rebuild=not args.quick)
    except QuasarError as e:
        print(f"quasar: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
