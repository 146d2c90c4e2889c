"""The torch backend's device-side pipeline: JPEGs decoded on the device, resizing on the device.

What a GPU batch server needs, on torch alone (no TensorRT, no onnxruntime-gpu):

* **JPEGs** are read (and their headers checked: bomb guard, EXIF orientation) on CPU worker threads,
  then decoded in one batched ``torchvision.io.decode_jpeg(list, device=...)`` call per group of
  ``batch_size`` files (nvJPEG on CUDA), and made upright on the device. A group whose batched decode
  fails is decoded file by file; a file the device decoder refuses is decoded on the CPU like any
  other, so its error (if any) is the CPU path's one line.
* **Other formats** (and arrays) are decoded on the CPU worker threads by the runtime's
  :class:`~quasar.runtime.prepare.Preparer` (OpenCV, Pillow, pillow-heif: every rule of
  :mod:`quasar.io`) into **pinned** host buffers (from a pool; pageable with ``pinned=False``), copied
  to the device on the feeder's side stream.
* **Resize and crop** on the device, to the shape :func:`quasar.preprocess.target_shape` gives, with
  ``torch.nn.functional.interpolate(..., antialias=True)`` (the same kernels as Pillow: bicubic
  a = -0.5, support scaled with the reduction), in Pillow's order (the horizontal pass, rounded and
  clipped to uint8, then the vertical one), then cropped by :func:`quasar.preprocess.crop_offsets`.
  Pillow's weights are fixed-point, torch's float, so a pixel may differ by a grey level;
  ``tests/test_torch_gpu_path.py`` bounds it.
  Normalisation (0..255, mean/std) is inside the fused module, so it runs on the device too.
* Images of identical preprocessed shape are batched (the runtime's bucketing rule: full, ``window``
  inputs behind, or the end), the batch is run by the backend's fused module, and results come out
  in input order; a file that fails is a record with its one-line reason and the batch goes on.

Threads: the CPU workers read and decode; one feeder thread per run issues the device work on its own
stream (decode, copies, resizes) and queues at most ``queue_size`` (2) ready batches, so the next
group is decoded while the caller's thread runs the model on the current batch (double buffering).

On the CPU (``device="cpu"`` and ``device_decode="on"``) the same code runs with CPU tensors: no
pinning, no streams; that is how CI tests it. **Not yet run on CUDA** (no GPU was available);
``python -m benchmarks.gpu_check`` runs it there.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np

from quasar.io import read_file
from quasar.io.decode import ImageError, check_pixels
from quasar.io.formats import JPEG, exif_orientation, jpeg_exif, jpeg_has_eoi, probe, sniff
from quasar.lifecycle import LazyPool
from quasar.preprocess import PreprocessSpec, crop_offsets, target_shape
from quasar.runtime.pipeline import Result, non_finite_reason
from quasar.runtime.prepare import tiny_image_warning
from quasar.runtime.sources import Item

# Filters with an antialiased torch equivalent of Pillow's (interpolate's ``antialias=True`` kernels).
DEVICE_FILTERS = {"bicubic": "bicubic", "bilinear": "bilinear"}


def device_resize_unsupported(spec: PreprocessSpec) -> str | None:
    """None when the spec's resize can run on the device, else why not (the CPU pipeline is used)."""
    if spec.resampler != "pil":
        return f"the {spec.resampler} resampler has no device implementation"
    if spec.interpolation not in DEVICE_FILTERS:
        return f"{spec.interpolation} interpolation has no antialiased device implementation"
    return None


def orient(torch, chw, orientation: int):
    """A CHW tensor made upright per EXIF ``orientation``: :func:`quasar.io.decode.apply_orientation`'s
    transforms on the last two axes."""
    if orientation in (5, 6, 7, 8):
        chw = chw.transpose(-1, -2)
    flips = {2: (-1,), 3: (-1, -2), 4: (-2,), 6: (-1,), 7: (-1, -2), 8: (-2,)}.get(orientation, ())
    return torch.flip(chw, flips) if flips else chw


class DeviceResize:
    """uint8 CHW image on the device -> the spec's uint8 HWC input, on the device."""

    def __init__(self, torch, spec: PreprocessSpec) -> None:
        import torch.nn.functional as F

        self.torch, self.F, self.spec = torch, F, spec
        self.mode = DEVICE_FILTERS[spec.interpolation]

    def __call__(self, chw, full_size: tuple[int, int]):
        """``full_size``: the upright full-resolution (height, width) the target is computed from;
        :class:`quasar.preprocess.ShapeError` for an extreme aspect ratio."""
        rh, rw, crop = target_shape(*full_size, self.spec)
        x = chw
        h, w = x.shape[-2:]
        # Pillow's order: the horizontal pass, rounded and clipped to uint8, then the vertical pass.
        for size in ((h, rw), (rh, rw)):
            if tuple(x.shape[-2:]) != size:
                y = self.F.interpolate(x[None].float(), size=size, mode=self.mode, align_corners=False,
                                       antialias=True)[0]
                x = y.round_().clamp_(0, 255).to(self.torch.uint8)
        if crop is not None:
            top, left = crop_offsets(rh, rw, crop, self.spec)
            x = x[:, top : top + crop[0], left : left + crop[1]]
        if self.spec.channel_order == "BGR":
            x = x.flip(0)
        return x.permute(1, 2, 0).contiguous()


class PinnedPool:
    """Page-locked host buffers by size class (powers of two), reused once their copy has completed."""

    def __init__(self, torch) -> None:
        self.torch = torch
        self.free: dict[int, list] = {}
        self.lock = threading.Lock()

    def stage(self, arr: np.ndarray):
        """``arr`` copied into a pinned buffer; (buffer, HWC view of it)."""
        n = max(1, arr.nbytes)
        size = 1 << (n - 1).bit_length()
        with self.lock:
            pool = self.free.setdefault(size, [])
            buf = pool.pop() if pool else None
        if buf is None:
            buf = self.torch.empty(size, dtype=self.torch.uint8).pin_memory()
        view = buf[: arr.nbytes].view(arr.shape)
        view.numpy()[...] = arr
        return buf, view

    def give_back(self, buf) -> None:
        with self.lock:
            self.free.setdefault(int(buf.numel()), []).append(buf)


@dataclass
class Loaded:
    """What a CPU worker made of one input: JPEG bytes for the device decoder, or a host image."""

    jpeg: bytes | None = None
    orientation: int = 1
    host: object = None  # a torch HWC view of the (pinned) host image
    buffer: object = None  # the pinned buffer ``host`` lives in, to give back after the copy
    full_size: tuple[int, int] = (0, 0)
    warning: str | None = None
    error: str | None = None


@dataclass
class _Batch:
    indices: list[int]
    labels: list[str]
    warnings: list[str | None]
    tensor: object
    ready: object  # a CUDA event the consumer's stream waits on (None on the CPU)


@dataclass
class _Failed:
    index: int
    label: str
    error: str


@dataclass
class _Fatal:
    exc: BaseException


_END = object()


class _Stopped(Exception):
    pass


class DevicePipeline:
    """:class:`~quasar.runtime.pipeline.Pipeline`'s contract (``run`` yields :class:`Result` in input
    order, ``close``) for a :class:`~quasar.runtime.backends.torch_backend.TorchBackend` that decodes
    and resizes on its device. ``pinned``: stage host-decoded images in page-locked memory (None:
    when the device is CUDA)."""

    def __init__(self, preparer, backend, batch_size: int = 32, workers: int = 4, window: int | None = None,
                 queue_size: int = 2, pinned: bool | None = None) -> None:
        import torch
        import torchvision.io

        self.torch, self.tvio = torch, torchvision.io
        self.preparer, self.backend, self.spec = preparer, backend, preparer.spec
        self.device = backend.device
        self.batch_size, self.workers = batch_size, workers
        self.window = window if window is not None else 4 * batch_size
        self.queue_size = queue_size
        cuda = self.device == "cuda"
        self.pinned = cuda if pinned is None else bool(pinned) and cuda
        self.pool = PinnedPool(torch) if self.pinned else None
        self.resize = DeviceResize(torch, self.spec)
        self._loaders = LazyPool(self.workers, "quasar-device-load")
        self.stats = {"device_decoded": 0, "host_decoded": 0, "device_decode_fallbacks": 0}

    # ------------------------------------------------------------------ CPU workers
    def _workers(self) -> ThreadPoolExecutor:
        return self._loaders.get()

    def close(self) -> None:
        self._loaders.close()

    def _load(self, item: Item) -> Loaded:
        """Read a JPEG and check its header (for the device decoder), or decode anything else on the CPU."""
        try:
            if item.error is None and item.array is None:
                data = item.data if item.data is not None else read_file(item.path, self.preparer.max_file_bytes)
                jpeg = self._jpeg(bytes(data))
                if jpeg is not None:
                    return jpeg
                item = Item(item.label, data=data)
            return self._host(item)
        except ImageError as e:
            return Loaded(error=str(e))
        except MemoryError:
            return Loaded(error="out of memory while decoding (use fewer --workers or a lower --max-pixels)")
        except Exception as e:
            return Loaded(error=f"unexpected {type(e).__name__}: {e}")

    def _jpeg(self, data: bytes) -> Loaded | None:
        """A JPEG the device decoder can take (size known, within the bomb guard, not cut short), else None
        (the CPU decoder then takes it and gives its reasons)."""
        if not data or sniff(data) != JPEG:
            return None
        header = probe(data)
        if not header.width or not header.height or not jpeg_has_eoi(data):
            return None
        check_pixels(header.width, header.height, self.preparer.max_pixels)
        orientation = exif_orientation(jpeg_exif(data))
        full = (header.width, header.height) if orientation >= 5 else (header.height, header.width)
        return Loaded(jpeg=data, orientation=orientation, full_size=full,
                      warning=tiny_image_warning(*full, self.spec))

    def _host(self, item: Item) -> Loaded:
        decoded = self.preparer.decode(item)
        img = np.ascontiguousarray(decoded.image)
        buf = None
        if self.pool is not None:
            buf, hwc = self.pool.stage(img)
        else:
            hwc = self.torch.from_numpy(img)
        return Loaded(host=hwc, buffer=buf, full_size=tuple(decoded.full_size),
                      warning=tiny_image_warning(*decoded.full_size, self.spec))

    # ------------------------------------------------------------------ feeder (device work, its own thread)
    def _stream(self):
        return self.torch.cuda.Stream() if self.device == "cuda" else None

    def _on(self, stream):
        return self.torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    def _decode_jpegs(self, blobs: list[bytes]) -> list:
        """Device tensors (CHW RGB) for ``blobs``, None where the device decoder refused the file."""
        if not blobs:
            return []
        mode = self.tvio.ImageReadMode.RGB
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-writable buffers; torchvision's deprecation notice
            tensors = [self.torch.from_numpy(np.frombuffer(b, dtype=np.uint8)) for b in blobs]
            try:
                out = self.tvio.decode_jpeg(tensors, mode=mode, device=self.device)
                self.stats["device_decoded"] += len(out)
                return list(out)
            except (RuntimeError, ValueError):
                pass
            results = []
            for t in tensors:  # one bad file fails the whole batched call: find it
                try:
                    results.append(self.tvio.decode_jpeg(t, mode=mode, device=self.device))
                    self.stats["device_decoded"] += 1
                except (RuntimeError, ValueError):
                    results.append(None)
                    self.stats["device_decode_fallbacks"] += 1
            return results

    def _to_device(self, loaded: Loaded, copies: list):
        """The host image as a CHW tensor on the device (copied contiguous HWC, permuted there)."""
        if self.device == "cpu":
            return loaded.host.permute(2, 0, 1)
        x = loaded.host.to(self.device, non_blocking=self.pinned).permute(2, 0, 1)
        if loaded.buffer is not None:
            done = self.torch.cuda.Event()
            done.record()
            copies.append((done, loaded.buffer))
        return x

    def _give_back(self, copies: list, wait: bool = False) -> None:
        """Return pinned buffers whose copies have completed (all of them with ``wait``)."""
        keep = []
        for done, buf in copies:
            if wait or done.query():
                if wait:
                    done.synchronize()
                self.pool.give_back(buf)
            else:
                keep.append((done, buf))
        copies[:] = keep

    def _group(self, group: list, stream, copies: list, put) -> list:
        """Decode and resize one group on the device; returns [(index, label, HWC tensor, warning)]."""
        loaded = [(i, label, fut.result()) for i, label, fut in group]
        jpegs = [(i, label, ld) for i, label, ld in loaded if ld.jpeg is not None]
        out = []
        with self._on(stream):
            decoded = dict(zip((i for i, _, _ in jpegs), self._decode_jpegs([ld.jpeg for _, _, ld in jpegs]),
                               strict=True))
            for i, label, ld in loaded:
                if ld.jpeg is not None and decoded[i] is None:  # the device decoder refused it: the CPU's turn
                    ld = self._load_on_host(label, ld.jpeg)
                if ld.error is not None:
                    put(_Failed(i, label, ld.error))
                    continue
                chw = orient(self.torch, decoded[i], ld.orientation) if ld.jpeg is not None else \
                    self._to_device(ld, copies)
                try:
                    out.append((i, label, self.resize(chw, ld.full_size), ld.warning))
                except ValueError as e:  # ShapeError: an extreme aspect ratio, this image's reason
                    put(_Failed(i, label, str(e)))
        return out

    def _load_on_host(self, label: str, data: bytes) -> Loaded:
        self.stats["host_decoded"] += 1
        try:
            return self._host(Item(label, data=data))
        except ImageError as e:
            return Loaded(error=str(e))
        except Exception as e:
            return Loaded(error=f"unexpected {type(e).__name__}: {e}")

    def _feed(self, items: Iterator[Item], out_q: queue.Queue, stop: threading.Event) -> None:
        def put(msg) -> None:
            while not stop.is_set():
                try:
                    out_q.put(msg, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        stream = self._stream()
        buckets: dict[tuple[int, ...], list] = {}
        copies: list = []
        counter = iter(range(1 << 62))
        pool = self._workers()

        def emit(shape) -> None:
            entries = buckets.pop(shape)
            with self._on(stream):
                tensor = self.torch.stack([e[2] for e in entries])
                ready = None
                if stream is not None:
                    ready = self.torch.cuda.Event()
                    ready.record(stream)
            put(_Batch([e[0] for e in entries], [e[1] for e in entries], [e[3] for e in entries], tensor, ready))

        def submit() -> list:
            return [(next(counter), item.label, pool.submit(self._load, item))
                    for item in islice(items, self.batch_size)]

        group: list = []
        following: list = []
        try:
            group = submit()
            while group:
                if stop.is_set():
                    raise _Stopped
                following = submit()  # the CPU reads the next group while this one is on the device
                for i, label, img, warning in self._group(group, stream, copies, put):
                    bucket = buckets.setdefault(tuple(img.shape), [])
                    bucket.append((i, label, img, warning))
                    if len(bucket) >= self.batch_size:
                        emit(tuple(img.shape))
                if group:
                    last = group[-1][0]
                    for shape, b in list(buckets.items()):  # the window rule
                        if last - b[0][0] >= self.window:
                            emit(shape)
                if self.pool is not None:
                    self._give_back(copies)
                group, following = following, []
            for shape in list(buckets):
                emit(shape)
            put(_END)
        except _Stopped:
            pass
        except BaseException as e:  # the input iterator (or the device) failed: the consumer raises it
            with contextlib.suppress(_Stopped):
                put(_Fatal(e))
        finally:
            for _, _, fut in group + following:
                fut.cancel()
            if self.pool is not None:
                self._give_back(copies, wait=True)

    # ------------------------------------------------------------------ consumer (the caller's thread)
    def _score(self, batch: _Batch) -> Iterable[Result]:
        torch = self.torch
        x = batch.tensor
        if batch.ready is not None:
            torch.cuda.current_stream().wait_event(batch.ready)
            x.record_stream(torch.cuda.current_stream())
        scores, margins = self.backend.forward(x)
        n = len(batch.indices)
        scores, margins = self.backend.check_outputs(scores.cpu().numpy(), margins.cpu().numpy(), n)
        finite = np.isfinite(scores).all(axis=1) & np.isfinite(margins).all(axis=1)
        for j, (i, label) in enumerate(zip(batch.indices, batch.labels, strict=True)):
            if finite[j]:
                yield Result(i, label, scores[j].copy(), margins[j].copy(), warning=batch.warnings[j])
            else:
                yield Result(i, label, error=non_finite_reason(self.backend))

    def run(self, items: Iterable[Item]) -> Iterator[Result]:
        """Score ``items`` lazily; one :class:`Result` per item, in input order."""
        out_q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        stop = threading.Event()
        self._workers()  # a closed pipeline raises here, in the caller's thread
        feeder = threading.Thread(target=self._feed, args=(iter(items), out_q, stop), name="quasar-device-feeder",
                                  daemon=True)
        ready: dict[int, Result] = {}
        next_index = 0
        feeder.start()
        try:
            while True:
                try:
                    msg = out_q.get(timeout=0.5)
                except queue.Empty:
                    if not feeder.is_alive() and out_q.empty():
                        raise RuntimeError("the device pipeline's feeder thread ended without finishing") from None
                    continue
                if msg is _END:
                    break
                if isinstance(msg, _Fatal):
                    raise msg.exc
                if isinstance(msg, _Failed):
                    ready[msg.index] = Result(msg.index, msg.label, error=msg.error)
                else:
                    for r in self._score(msg):
                        ready[r.index] = r
                while next_index in ready:
                    yield ready.pop(next_index)
                    next_index += 1
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1
        finally:
            stop.set()  # an abandoned run: the feeder stops at its next put; queued batches are dropped
            while feeder.is_alive():
                with contextlib.suppress(queue.Empty):
                    out_q.get(timeout=0.01)
            feeder.join()
