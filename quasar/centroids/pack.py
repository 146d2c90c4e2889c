"""The centroid pack: K heads of (good, bad) centroids for one encoder, in one JSON file.

JSON keeps the pack self-describing and safe to load (nothing is ever unpickled); centroids are
stored as base64 little-endian float32, which is exact and compact. The content hash covers every
field except itself and ``created``, so two builds with identical numbers hash identically.

Layout (format_version 1)::

    {"format": "quasar-centroid-pack", "format_version": 1,
     "encoder": "effnet-lite0", "embed_dim": 1280, "preprocess": {...PreprocessSpec...},
     "heads": [{"name": "quality", "good": <array>, "bad": <array>, "logit_scale": 41.7,
                "logit_scale_policy": "calibrated", "aggregation": {...},
                "anchors": {"good": 120, "bad": 3000, "kind": "synthetic", "provenance": {...}}}],
     "created": "2026-11-27T05:00:00Z", "content_hash": "sha256:..."}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources

import numpy as np

from quasar.errors import QuasarError
from quasar.preprocess import PreprocessSpec

FORMAT = "quasar-centroid-pack"
FORMAT_VERSION = 1
DEFAULT_PACK_NAME = "default"
_DEFAULT_PACK_FILE = "default_quality.qpack.json"


class PackError(QuasarError, ValueError):
    """A pack file is malformed, of an unknown version, or does not fit the request."""


def encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: dict) -> np.ndarray:
    if d.get("dtype") != "float32":
        raise PackError(f"unsupported array dtype {d.get('dtype')!r}")
    raw = base64.b64decode(d["b64"])
    a = np.frombuffer(raw, dtype="<f4")
    shape = tuple(d["shape"])
    if int(np.prod(shape)) != a.size:
        raise PackError(f"array data has {a.size} values, shape says {shape}")
    return a.reshape(shape).astype(np.float32)


@dataclass
class Head:
    """One scoring head: P(good) = softmax(logit_scale * [cos(x, good), cos(x, bad)])[0]."""

    name: str
    good: np.ndarray
    bad: np.ndarray
    logit_scale: float
    logit_scale_policy: str = "calibrated"
    aggregation: dict = field(default_factory=dict)
    anchors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "good": encode_array(self.good),
            "bad": encode_array(self.bad),
            "logit_scale": float(self.logit_scale),
            "logit_scale_policy": self.logit_scale_policy,
            "aggregation": self.aggregation,
            "anchors": self.anchors,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Head:
        return cls(name=d["name"], good=decode_array(d["good"]), bad=decode_array(d["bad"]),
                   logit_scale=float(d["logit_scale"]), logit_scale_policy=d.get("logit_scale_policy", "calibrated"),
                   aggregation=d.get("aggregation", {}), anchors=d.get("anchors", {}))


@dataclass
class CentroidPack:
    encoder: str
    preprocess: PreprocessSpec
    heads: list[Head]
    created: str = ""

    @property
    def embed_dim(self) -> int:
        return int(self.heads[0].good.shape[-1]) if self.heads else 0

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.heads]

    def head(self, name: str) -> Head:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(f"pack has no head {name!r}; heads: {self.head_names}")

    def centroid_matrix(self) -> np.ndarray:
        """[2K, D] matrix, rows (good_0, bad_0, good_1, bad_1, ...), each L2-normalised."""
        rows = []
        for h in self.heads:
            rows += [h.good, h.bad]
        m = np.asarray(rows, dtype=np.float64)
        return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)

    def logit_scales(self) -> np.ndarray:
        return np.asarray([h.logit_scale for h in self.heads], dtype=np.float32)

    def _body(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder,
            "embed_dim": self.embed_dim,
            "preprocess": self.preprocess.to_dict(),
            "heads": [h.to_dict() for h in self.heads],
        }

    @property
    def content_hash(self) -> str:
        canon = json.dumps(self._body(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()

    def to_dict(self) -> dict:
        d = self._body()
        d["created"] = self.created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        d["content_hash"] = self.content_hash
        return d

    def save(self, path: str | os.PathLike) -> str:
        """Write the pack atomically; returns its content hash."""
        from quasar.centroids.validate import validate_pack

        validate_pack(self, str(path))
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
        return self.content_hash

    def validate(self) -> None:
        if not self.heads:
            raise PackError("a pack needs at least one head")
        names = self.head_names
        if len(set(names)) != len(names):
            raise PackError(f"duplicate head names: {names}")
        dim = self.embed_dim
        for h in self.heads:
            if h.good.shape != (dim,) or h.bad.shape != (dim,):
                raise PackError(f"head {h.name!r}: centroids must both have shape ({dim},)")
            if not (np.all(np.isfinite(h.good)) and np.all(np.isfinite(h.bad))):
                raise PackError(f"head {h.name!r}: centroids contain NaN or inf")
            if not np.isfinite(h.logit_scale) or h.logit_scale <= 0:
                raise PackError(f"head {h.name!r}: logit scale must be positive and finite")

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>", allow_unhashed: bool = False) -> CentroidPack:
        """Build and validate a pack (:func:`quasar.centroids.validate.validate_pack`); the content hash
        is required unless ``allow_unhashed``."""
        from quasar.centroids.validate import check_content_hash, validate_pack

        if d.get("format") != FORMAT:
            raise PackError(f"{source}: not a QUASAR centroid pack (format={d.get('format')!r})")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise PackError(f"{source}: pack format version {version!r} is not supported (this QUASAR reads <= {FORMAT_VERSION})")
        malformed = (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError)
        try:
            pack = cls(encoder=d["encoder"], preprocess=PreprocessSpec.from_dict(d["preprocess"]),
                       heads=[Head.from_dict(h) for h in d["heads"]], created=d.get("created", ""))
        except PackError as e:  # raised without the file name (decode_array)
            raise PackError(f"{source}: malformed pack: {e}") from None
        except malformed as e:
            raise PackError(f"{source}: malformed pack: {type(e).__name__}: {str(e)[:200]}") from None
        try:
            validate_pack(pack, source)
            check_content_hash(d, pack, source, allow_unhashed)
        except PackError:
            raise
        except malformed as e:
            raise PackError(f"{source}: malformed pack: {type(e).__name__}: {str(e)[:200]}") from None
        return pack

    @classmethod
    def load(cls, path: str | os.PathLike, allow_unhashed: bool = False) -> CentroidPack:
        """Load a pack file, or the shipped default pack when ``path`` is ``"default"``.

        The file size is capped before reading and the pack validated
        (:mod:`quasar.centroids.validate`); ``allow_unhashed`` accepts a pack without a content hash.
        """
        from quasar.centroids.validate import read_pack_json

        if str(path) == DEFAULT_PACK_NAME:
            path = default_pack_path()
        d = read_pack_json(path)
        if not isinstance(d, dict):
            raise PackError(f"{path}: not a QUASAR centroid pack")
        return cls.from_dict(d, source=str(path), allow_unhashed=allow_unhashed)

    def merge(self, other: CentroidPack, replace: bool = False) -> CentroidPack:
        """Combine heads built separately for the same encoder and preprocessing into one pack."""
        if other.encoder != self.encoder:
            raise PackError(f"cannot merge a head for encoder {other.encoder!r} into a pack for {self.encoder!r}: "
                            "all heads of a pack share one encoder pass")
        if other.preprocess != self.preprocess:
            raise PackError("cannot merge packs with different preprocessing specs "
                            f"({other.preprocess.to_json()} vs {self.preprocess.to_json()})")
        heads = {h.name: h for h in self.heads}
        for h in other.heads:
            if h.name in heads and not replace:
                raise PackError(f"head {h.name!r} exists in both packs; pass replace=True to overwrite it")
            heads[h.name] = h
        return CentroidPack(self.encoder, self.preprocess, list(heads.values()))


def default_pack_path() -> str:
    return str(resources.files("quasar") / "data" / _DEFAULT_PACK_FILE)
