"""Batched anchor embedding with a content-addressed cache.

Why a cache: building a pack with another aggregation, logit scale or subsample must not re-run
the encoder. Each embedding is stored under a key made of the encoder id + preprocessing spec and
the *content* hash of the source file plus the distortion tag, so renaming or moving photos keeps
the cache valid and editing a photo invalidates it.

Unreadable anchors are skipped with one warning listing every skipped file and its reason; the
rest of the set is embedded.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quasar.centroids.anchors import Anchor
from quasar.photos import cache_dir
from quasar.preprocess import preprocess, read_rgb


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EmbeddingCache:
    """One ``.npy`` file per (encoder+spec, content, distortion) key; writes are atomic."""

    def __init__(self, encoder_key: str, root: str | os.PathLike | None = None) -> None:
        self.dir = Path(root or cache_dir() / "embeddings") / encoder_key
        self.dir.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        f = self._file(key)
        if f.exists():
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OSError):
                return None
        return None

    def put(self, key: str, emb: np.ndarray) -> None:
        f = self._file(key)
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, np.asarray(emb, dtype=np.float32))
        os.replace(tmp, f)


class Embedder:
    """Embeds anchors with a torch :class:`~quasar.encoders.Encoder` in shape-bucketed batches."""

    def __init__(self, encoder, batch_size: int = 16, cache_root: str | os.PathLike | None = None,
                 use_cache: bool = True, progress: bool | None = None) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        key = hashlib.sha1(f"{encoder.encoder_id}|{encoder.spec.to_json()}".encode()).hexdigest()[:16]
        self.cache = EmbeddingCache(key, cache_root) if use_cache else None
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stats = {"embedded": 0, "cached": 0, "failed": 0}

    def _run(self, batch: list[np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.stack(batch))
            return self.encoder(x).float().numpy()

    def embed(self, anchors: Sequence[Anchor], desc: str = "embedding") -> tuple[np.ndarray, list[Anchor], list[tuple[str, str]]]:
        """Return (embeddings [n_ok, D], the anchors they belong to, [(path, reason), ...] skipped)."""
        results: dict[int, np.ndarray] = {}
        failed: list[tuple[str, str]] = []
        hashes: dict[str, str] = {}
        todo: list[tuple[int, Anchor, str]] = []
        for i, a in enumerate(anchors):
            try:
                if a.path not in hashes:
                    hashes[a.path] = file_sha256(a.path)
            except OSError as e:
                failed.append((a.path, e.strerror or str(e)))
                continue
            key = f"{hashes[a.path][:40]}_{a.tag.replace(':', '-')}"
            cached = self.cache.get(key) if self.cache else None
            if cached is not None:
                results[i] = cached
                self.stats["cached"] += 1
            else:
                todo.append((i, a, key))
        bar = None
        if self.progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=desc, unit="img")
        buckets: OrderedDict[tuple, list[tuple[int, str, np.ndarray]]] = OrderedDict()

        def flush(shape: tuple) -> None:
            items = buckets.pop(shape)
            embs = self._run([x for _, _, x in items])
            for (i, key, _), e in zip(items, embs, strict=True):
                results[i] = e
                if self.cache:
                    self.cache.put(key, e)
            self.stats["embedded"] += len(items)
            if bar:
                bar.update(len(items))

        decoded_path, decoded = None, None
        bad_paths: dict[str, str] = {}
        for i, a, key in sorted(todo, key=lambda t: t[1].path):  # group by source: decode once
            if a.path in bad_paths:
                continue
            if a.path != decoded_path:
                try:
                    decoded, decoded_path = read_rgb(a.path), a.path
                except (ValueError, OSError, Exception) as e:  # noqa: BLE001 - any decoder failure skips the file
                    bad_paths[a.path] = str(e).removeprefix(f"{a.path}: ")
                    continue
            x = preprocess(a.load(decoded), self.encoder.spec)
            buckets.setdefault(x.shape, []).append((i, key, x))
            if len(buckets[x.shape]) >= self.batch_size:
                flush(x.shape)
        for shape in list(buckets):
            flush(shape)
        if bar:
            bar.close()
        failed += sorted(bad_paths.items())
        if failed:
            self.stats["failed"] += len(failed)
            listing = "\n".join(f"  {p}: {why}" for p, why in failed)
            warnings.warn(f"skipped {len(failed)} unreadable anchor file(s):\n{listing}", stacklevel=2)
        ok = sorted(results)
        if not ok:
            return np.zeros((0, self.encoder.embed_dim), np.float32), [], failed
        return np.stack([results[i] for i in ok]), [anchors[i] for i in ok], failed
