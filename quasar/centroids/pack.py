"""The centroid pack: K heads of (good, bad) centroids for one encoder, in one JSON file.

JSON keeps the pack self-describing and safe to load (nothing is ever unpickled); centroids are
stored as base64 little-endian float32, which is exact and compact. The content hash covers every
field except itself and ``created``, so two builds with identical numbers hash identically.

Layout (format_version 2; version 1 is the same without ``kind``/``bias``/``weight``/``combine``,
and a pack whose heads need none of them is still written as version 1, byte for byte as before;
version 3 adds ``"explain": true`` on the base heads that explain a low score, written only by packs
that have such heads)::

    {"format": "quasar-centroid-pack", "format_version": 1,
     "encoder": "effnet-lite0", "embed_dim": 1280, "preprocess": {...PreprocessSpec...},
     "heads": [{"name": "quality", "good": <array>, "bad": <array>, "logit_scale": 41.7,
                "logit_scale_policy": "calibrated", "aggregation": {...},
                "anchors": {"good": 120, "bad": 3000, "kind": "synthetic", "provenance": {...}}},
               {"name": "noise", "kind": "linear", "weight": <array>, "bias": -0.01, "logit_scale": 80.0, ...},
               {"name": "overall", "kind": "combine", "combine": {"rule": "min", "of": ["noise", ...]},
                "logit_scale": 1.0, ...}],
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

from quasar.centroids.heads import combine_logits
from quasar.constants import SHIPPED_PACK
from quasar.contract import COMBINE_RULES
from quasar.errors import QuasarError
from quasar.preprocess import PreprocessSpec

FORMAT = "quasar-centroid-pack"
FORMAT_VERSION = 3
HEADS_FORMAT_VERSION = 2  # packs with linear or combine heads but no explanation heads
HEAD_KINDS = ("centroid", "linear", "combine")
DEFAULT_PACK_NAME = "default"


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
    """One scoring head: ``score = sigmoid(logit_scale * margin)``.

    * ``centroid`` (the QUASAR paper's): ``margin = cos(x, good) - cos(x, bad) + bias``, i.e. the
      two-way softmax of ``logit_scale * [cos_good, cos_bad]`` shifted by ``bias``;
    * ``linear``: ``margin = x . weight + bias`` for the unit embedding ``x`` (LDA and ridge
      directions from the same anchors, :mod:`quasar.centroids.heads`);
    * ``combine``: ``margin = rule(logit_scale_i * margin_i for i in combine["of"]) + bias`` over other
      heads' logits ``L_i`` (``min``: the worst one decides; ``mean``: their average; ``softmin``:
      ``-log(sum(exp(-L_i)))``, a smooth minimum that still hears the second-worst).

    ``explain``: a base head that ``quasar score --explain`` shows and may name as the ``reason`` (the
    default pack: one per defect family, fitted so that the lowest one is the photo's defect family);
    the parts of a combine head that are not explanation heads are then not shown by the CLI.
    """

    name: str
    good: np.ndarray | None
    bad: np.ndarray | None
    logit_scale: float
    logit_scale_policy: str = "calibrated"
    aggregation: dict = field(default_factory=dict)
    anchors: dict = field(default_factory=dict)
    kind: str = "centroid"
    bias: float = 0.0
    weight: np.ndarray | None = None
    combine: dict | None = None
    explain: bool = False

    @property
    def is_v1(self) -> bool:
        return self.kind == "centroid" and self.bias == 0.0

    def direction(self) -> np.ndarray:
        """The margin's weight vector over the unit embedding (float32 [D])."""
        if self.kind == "linear":
            return np.asarray(self.weight, np.float32)
        if self.kind == "centroid":
            g = np.asarray(self.good, np.float64)
            b = np.asarray(self.bad, np.float64)
            return (g / np.linalg.norm(g) - b / np.linalg.norm(b)).astype(np.float32)
        raise PackError(f"head {self.name!r}: a combine head has no direction")

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "logit_scale": float(self.logit_scale),
            "logit_scale_policy": self.logit_scale_policy,
            "aggregation": self.aggregation,
            "anchors": self.anchors,
        }
        if self.kind == "centroid":
            d.update(good=encode_array(self.good), bad=encode_array(self.bad))
        if not self.is_v1:
            d.update(kind=self.kind, bias=float(self.bias))
        if self.kind == "linear":
            d["weight"] = encode_array(self.weight)
        if self.kind == "combine":
            d["combine"] = {"rule": self.combine["rule"], "of": list(self.combine["of"])}
        if self.explain:
            d["explain"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Head:
        kind = d.get("kind", "centroid")
        if kind not in HEAD_KINDS:
            raise PackError(f"head {d.get('name')!r}: unknown kind {kind!r} (known: {HEAD_KINDS})")
        def arr(key: str) -> np.ndarray:
            return decode_array(d[key])

        return cls(name=d["name"], good=arr("good") if kind == "centroid" else None,
                   bad=arr("bad") if kind == "centroid" else None,
                   logit_scale=float(d["logit_scale"]), logit_scale_policy=d.get("logit_scale_policy", "calibrated"),
                   aggregation=d.get("aggregation", {}), anchors=d.get("anchors", {}), kind=kind,
                   bias=float(d.get("bias", 0.0)), weight=arr("weight") if kind == "linear" else None,
                   combine=dict(d["combine"]) if kind == "combine" else None,
                   explain=d.get("explain", False) is True)


@dataclass
class CentroidPack:
    """K scoring heads for one encoder, stored as one JSON file (``*.qpack.json``).

    The paper's head (Ilyin et al., 2025, "QUASAR: Quality and Aesthetics Scoring with Advanced Representations") is a ``centroid`` head: the mean of the L2-normalised embeddings of
    the good anchors and of the bad anchors; an image with unit embedding ``e`` scores
    ``sigmoid(logit_scale * (cos(e, good) - cos(e, bad) + bias))``, the two-way softmax of the
    scaled cosine similarities. ``linear`` and ``combine`` heads extend it (:class:`Head`).

    Args:
        encoder: id of the encoder whose embeddings the heads score (:func:`quasar.encoders.create_encoder`).
        preprocess: how an image becomes that encoder's input.
        heads: base heads (centroid, linear) first, then the combine heads that read them.
        created: when it was built (ISO 8601; not part of the content hash).

    Raises:
        PackError: from :meth:`load`, :meth:`from_dict` and :meth:`save`, for a malformed, unhashed,
            tampered or invalid pack (one line naming the file and the reason).

    Examples:
        >>> import numpy as np
        >>> pack = CentroidPack.load("default")
        >>> pack.encoder, pack.embed_dim
        ('effnet-lite0+taps', 4198)
        >>> pack.output_names[-1], [pack.output_names[i] for i in pack.explain_plan()]
        ('quality', ['sharpness', 'noise', 'compression', 'exposure', 'color', 'spatial', 'optics'])
        >>> pack.head("quality").combine["of"][:2]  # what quality averages: the quality.<family> heads
        ['quality.sharpness', 'quality.noise']
        >>> scores, margins = pack.score_embeddings(np.ones((2, pack.embed_dim)))  # the graph's head, in numpy
        >>> scores.shape
        (2, 15)

        A hand-made pack with one centroid head (a good and a bad direction in 4 dimensions):

        >>> good, bad = np.eye(4, dtype=np.float32)[:2]
        >>> tiny = CentroidPack("effnet-lite0", pack.preprocess, [Head("quality", good, bad, logit_scale=10.0)])
        >>> scores, margins = tiny.score_embeddings(np.array([[3.0, 0.0, 0.0, 0.0]]))
        >>> float(margins[0, 0]), round(float(scores[0, 0]), 5)  # cos(e, good) - cos(e, bad); sigmoid(10 * 1)
        (1.0, 0.99995)
    """

    encoder: str
    preprocess: PreprocessSpec
    heads: list[Head]
    created: str = ""

    @property
    def embed_dim(self) -> int:
        for h in self.base_heads:
            a = h.weight if h.kind == "linear" else h.good
            return int(np.asarray(a).shape[-1]) if a is not None else 0
        return 0

    @property
    def base_heads(self) -> list[Head]:
        """Heads with their own direction (centroid, linear), in pack order; combine heads come after."""
        return [h for h in self.heads if h.kind != "combine"]

    @property
    def combine_heads(self) -> list[Head]:
        return [h for h in self.heads if h.kind == "combine"]

    @property
    def format_version(self) -> int:
        if any(h.explain for h in self.heads):
            return FORMAT_VERSION
        return 1 if all(h.is_v1 for h in self.heads) else HEADS_FORMAT_VERSION

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.heads]

    def head(self, name: str) -> Head:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(f"pack has no head {name!r}; heads: {self.head_names}")

    def centroid_matrix(self) -> np.ndarray:
        """[2K, D] matrix, rows (good_0, bad_0, good_1, bad_1, ...), each L2-normalised (centroid heads only)."""
        rows = []
        for h in self.heads:
            if h.kind != "centroid":
                raise PackError(f"head {h.name!r} is a {h.kind} head: use head_weights()")
            rows += [h.good, h.bad]
        m = np.asarray(rows, dtype=np.float64)
        return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)

    def head_weights(self) -> np.ndarray:
        """[K, D] float32: one margin direction per base head (the graph's ``quasar.head_weights``)."""
        return np.stack([h.direction() for h in self.base_heads]).astype(np.float32)

    def head_biases(self) -> np.ndarray:
        """[K_total] float32 in output order."""
        return np.asarray([h.bias for h in self.base_heads + self.combine_heads], dtype=np.float32)

    @property
    def output_names(self) -> list[str]:
        """Head names in the order of the graph's output columns: base heads, then combine heads."""
        return [h.name for h in self.base_heads + self.combine_heads]

    def combine_plan(self) -> list[tuple[str, list[int]]]:
        """For each combine head (in output order): its rule and the base-head columns it reads."""
        index = {h.name: i for i, h in enumerate(self.base_heads)}
        return [(h.combine["rule"], [index[n] for n in h.combine["of"]]) for h in self.combine_heads]

    def explain_plan(self) -> list[int]:
        """The base-head columns of the explanation heads (the graph's ``quasar.explain``)."""
        return [i for i, h in enumerate(self.base_heads) if h.explain]

    def score_embeddings(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, margins) [N, K_total] in output order for raw embeddings [N, D]: the fused graph's
        head in float64 numpy (benchmarks score cached embeddings with it; tests compare it to the graph)."""
        e = np.asarray(emb, np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        base = self.base_heads
        scales = self.logit_scales().astype(np.float64)
        biases = self.head_biases().astype(np.float64)
        m = e @ self.head_weights().astype(np.float64).T + biases[: len(base)]
        cols = [m]
        logits = m * scales[: len(base)]
        for j, (rule, idx) in enumerate(self.combine_plan()):
            c = combine_logits(logits[:, idx], rule)
            cols.append((c + biases[len(base) + j])[:, None])
        margins = np.concatenate(cols, axis=1)
        return 1.0 / (1.0 + np.exp(-margins * scales)), margins

    def logit_scales(self) -> np.ndarray:
        """[K_total] float32 in output order."""
        return np.asarray([h.logit_scale for h in self.base_heads + self.combine_heads], dtype=np.float32)

    def _body(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
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
        if not self.base_heads:
            raise PackError("a pack needs at least one centroid or linear head")
        dim = self.embed_dim
        base = {h.name for h in self.base_heads}
        for h in self.heads:
            if h.kind not in HEAD_KINDS:
                raise PackError(f"head {h.name!r}: unknown kind {h.kind!r}")
            arrays = {"centroid": ("good", "bad"), "linear": ("weight",), "combine": ()}[h.kind]
            for side in arrays:
                a = getattr(h, side)
                if a is None or a.shape != (dim,):
                    raise PackError(f"head {h.name!r}: {side} must have shape ({dim},)")
                if not np.all(np.isfinite(a)):
                    raise PackError(f"head {h.name!r}: {side} contains NaN or inf")
            if not np.isfinite(h.logit_scale) or h.logit_scale <= 0:
                raise PackError(f"head {h.name!r}: logit scale must be positive and finite")
            if not np.isfinite(h.bias):
                raise PackError(f"head {h.name!r}: bias must be finite")
            if h.explain and h.kind == "combine":
                raise PackError(f"head {h.name!r}: an explanation head must be a centroid or linear head")
            if h.kind == "combine":
                c = h.combine or {}
                of = c.get("of") or []
                if c.get("rule") not in COMBINE_RULES or not of or any(n not in base for n in of):
                    raise PackError(f"head {h.name!r}: combine needs a rule in {COMBINE_RULES} and the names of "
                                    f"centroid or linear heads of this pack, got {c!r}")

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
    return str(resources.files("quasar") / "data" / SHIPPED_PACK)
