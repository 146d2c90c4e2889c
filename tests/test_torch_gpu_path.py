"""The torch backend's GPU path, run on the CPU: the same code as on CUDA (decode_jpeg on the backend's device,
resizing on the device, fp16/bf16, per-file errors, input order), checked against ONNX Runtime on the CPU
with the shipped default model and real photos. CUDA itself is not yet run (no GPU here)."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_images import cmyk_jpeg, encode, jpeg, jpeg_with_orientation, oriented_view, pattern, truncated

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")

import cv2  # noqa: E402

from quasar.errors import QuasarError  # noqa: E402
from quasar.eval.metrics import srcc  # noqa: E402
from quasar.io.decode import apply_orientation  # noqa: E402
from quasar.io.formats import exif_orientation, jpeg_exif  # noqa: E402
from quasar.preprocess import PreprocessSpec, preprocess  # noqa: E402
from quasar.runtime import Scorer  # noqa: E402
from quasar.runtime.backends.torch_device import DeviceResize, orient  # noqa: E402
from quasar.runtime.backends.torch_options import TorchOptions  # noqa: E402
from quasar.runtime.prepare import Preparer  # noqa: E402
from quasar.runtime.sources import Item  # noqa: E402

DEVICE_CPU = TorchOptions(device_decode="on")  # the GPU path's code, on CPU tensors


@pytest.fixture(scope="module")
def model():
    from quasar.shipped import shipped_model_path

    path = shipped_model_path()
    if path is None:
        pytest.skip("the shipped model was not exported from the shipped pack (a rebuilt development pack)")
    return path


@pytest.fixture(scope="module")
def photo_jpegs(photos, tmp_path_factory):
    """Eight real photos (at most 768 px) written as quality-92 JPEGs, as cameras and websites store them."""
    d = tmp_path_factory.mktemp("jpegs")
    out = []
    for i, p in enumerate(photos[:8]):
        f = d / f"{i}.jpg"
        cv2.imwrite(str(f), cv2.imread(p.path), [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(str(f))
    return out


def test_device_resize_matches_pillow_on_real_photos(photos):
    """Resizing on the device (torch antialiased kernels, Pillow's pass order and rounding) is within one
    grey level of the CPU preprocessing (Pillow), and almost everywhere identical; a single 2-D interpolate
    (no rounding and clipping between the passes) is up to 5 levels off at edges."""
    specs = [PreprocessSpec(policy="native", size=512, size_multiple=32, min_size=64, mean=(0.5,) * 3, std=(0.5,) * 3),
             PreprocessSpec(policy="center_crop", size=224, channel_order="BGR"),
             PreprocessSpec(policy="fixed", size=320, height=240, width=320, fit="crop", interpolation="bilinear")]
    worst, differing, total = 0, 0, 0
    for spec in specs:
        resize = DeviceResize(torch, spec)
        for p in photos[:4]:
            rgb = cv2.cvtColor(cv2.imread(p.path), cv2.COLOR_BGR2RGB)
            want = preprocess(rgb, spec)
            got = resize(torch.from_numpy(rgb).permute(2, 0, 1), rgb.shape[:2]).numpy()
            assert got.shape == want.shape and got.dtype == np.uint8
            diff = np.abs(got.astype(int) - want.astype(int))
            worst, differing, total = max(worst, int(diff.max())), differing + int((diff > 0).sum()), total + diff.size
    print(f"device resize vs Pillow: max |d| {worst} grey levels, {100 * differing / total:.3f}% of values differ")
    assert worst <= 1 and differing / total < 0.01


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_the_device_matches_the_cpu(orientation):
    rgb = pattern(30, 50)
    data = jpeg_with_orientation(rgb, orientation)
    assert exif_orientation(jpeg_exif(data)) == orientation
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    got = orient(torch, chw, orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, apply_orientation(rgb, orientation))
    np.testing.assert_array_equal(got, oriented_view(rgb, orientation))


def test_jpeg_exif_is_none_without_an_exif_segment():
    assert jpeg_exif(jpeg(pattern())) is None
    assert jpeg_exif(b"\x89PNG\r\n\x1a\n") is None


@pytest.fixture(scope="module")
def ort_scorer(model):
    with Scorer(model, workers=2) as s:
        yield s


@pytest.fixture(scope="module")
def torch_device_scorer(model):
    with Scorer(model, backend="torch", device="cpu", workers=2, batch_size=4, torch_options=DEVICE_CPU) as s:
        yield s


def test_fp32_matches_onnxruntime_on_the_same_pixels(model, photos, ort_scorer):
    """The torch backend (fp32, CPU) against ONNX Runtime (CPU) on the same preprocessed real photos."""
    from quasar.runtime.backends.torch_backend import TorchBackend

    prep = Preparer(ort_scorer.info.spec)
    arrays = [prep(Item(p.path, path=p.path)) for p in photos[:6]]
    batch = np.stack([a for a in arrays if a.shape == arrays[0].shape][:3])
    backend = TorchBackend(ort_scorer.info, device="cpu")
    # the mean combine's column lives on the device, so a CUDA graph can capture the forward pass
    assert backend.module.head._mean_cols and all(isinstance(c, torch.Tensor)
                                                  for c in backend.module.head._mean_cols.values())
    try:
        t_scores, t_margins = backend.run(batch)
    finally:
        backend.close()
    o_scores, o_margins = ort_scorer.backend.run(batch)
    print(f"torch fp32 vs ORT: max |d score| {np.abs(t_scores - o_scores).max():.2e}")
    assert np.abs(t_scores - o_scores).max() <= 1e-3
    np.testing.assert_allclose(t_margins, o_margins, rtol=5e-4, atol=1e-4)  # as tests/test_runtime_parity.py


def test_device_decoded_jpegs_rank_like_opencv_decoded(photo_jpegs, model, ort_scorer, torch_device_scorer):
    """torchvision's decode_jpeg + resizing on the device against the CPU path (OpenCV at full scale, and
    OpenCV's default reduced decoding): per-head SRCC, printed; the decoders differ slightly."""
    dev = torch_device_scorer.score(photo_jpegs)
    assert torch_device_scorer.pipeline.stats["device_decoded"] >= len(photo_jpegs)
    cpu_reduced = ort_scorer.score(photo_jpegs)
    with Scorer(model, workers=2, reduced_decode=False) as s:
        cpu_full = s.score(photo_jpegs)
    assert all(r.ok for r in dev + cpu_full + cpu_reduced)
    worst_full, worst_reduced, worst_d = 1.0, 1.0, 0.0
    for head in ort_scorer.heads:
        d = [r.scores[head] for r in dev]
        worst_full = min(worst_full, srcc(d, [r.scores[head] for r in cpu_full]))
        worst_reduced = min(worst_reduced, srcc(d, [r.scores[head] for r in cpu_reduced]))
        worst_d = max(worst_d, max(abs(a - r.scores[head]) for a, r in zip(d, cpu_full, strict=True)))
    print(f"device decode vs OpenCV full decode: worst-head SRCC {worst_full:.4f}, max |d score| {worst_d:.4f}; "
          f"vs OpenCV reduced decode (the default): worst-head SRCC {worst_reduced:.4f}")
    assert worst_full >= 0.97 and worst_d <= 0.02


def test_per_file_errors_and_order_as_on_the_cpu(tmp_path, ort_scorer, torch_device_scorer):
    """Errors are the CPU path's one-line reasons, the batch goes on, results come in input order."""
    rgb = pattern(96, 128)
    files = {"good.jpg": jpeg(rgb), "cut.jpg": truncated(jpeg(pattern(200, 300))), "empty.jpg": b"",
             "cmyk.jpg": cmyk_jpeg(rgb), "rotated.jpg": jpeg_with_orientation(pattern(64, 160, 3), 6),
             "good.png": encode(pattern(80, 120, 1)), "text.png": b"<html>not an image</html>",
             "tiny.jpg": jpeg(pattern(12, 16)), "strip.png": encode(pattern(4, 2000, 2))}
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    paths.insert(3, str(tmp_path / "missing.jpg"))
    cpu, dev = ort_scorer.score(paths), torch_device_scorer.score(paths)
    assert [r.source for r in dev] == paths
    for a, b in zip(cpu, dev, strict=True):
        assert a.error == b.error, a.source
        assert a.warning == b.warning, a.source
        if a.ok:
            assert max(abs(a.scores[h] - b.scores[h]) for h in a.scores) < 0.05, a.source
    assert sum(r.ok for r in dev) >= 4 and sum(not r.ok for r in dev) >= 4


@pytest.mark.parametrize(("precision", "bound"), [("bf16", 0.97), ("fp16", 0.995)])
def test_reduced_precision_ranks_close_to_fp32(model, heldout_photos, ort_scorer, precision, bound):
    """bf16/fp16 encoder on the CPU (the heads stay float32): per-head SRCC against ORT fp32 on 16 held-out photos.

    Measured (benchmarks/results/torch_precision.md): bf16 worst head 0.979, short of the issue's 0.999.
    bf16 keeps 8 significant bits; rounding the normalised pixels alone (everything else fp32) moves the
    margins by 2-1200x the closest pair of photos' gap, keeping the input, stem and blocks 0-1 in fp32
    does not help, and any one stage in bf16 (the rest fp32) costs about as much as all of them (the tap
    statistics are already taken in fp32). fp16 (11 bits) swaps one adjacent pair of one head (0.997; 0.995 allows no second
    swap). Tried: the fp16 bound fails when the heads' logits are rounded to bf16 (0.994); the bf16 bound
    is the measured level less a margin and catches gross regressions only (taking the tap statistics in
    bf16 moves it to 0.977). The issue's 0.999 means no swap at all on 16 photos; not reached."""
    files = [p.path for p in sorted(heldout_photos, key=lambda p: p.name)[:16]]
    ref = ort_scorer.score(files)
    with Scorer(model, backend="torch", device="cpu", workers=2,
                torch_options=TorchOptions(precision=precision)) as s:
        assert s.backend.name == f"torch-cpu-{precision}"
        got = s.score(files)
    worst = min(srcc([r.scores[h] for r in got], [r.scores[h] for r in ref]) for h in ort_scorer.heads)
    print(f"{precision} vs fp32: worst-head SRCC {worst:.4f} on {len(files)} photos")
    assert worst >= bound


def test_options_are_checked_before_anything_loads(model):
    with pytest.raises(QuasarError, match="precision"):
        TorchOptions(precision="fp8")
    with pytest.raises(QuasarError, match="device_decode"):
        TorchOptions(device_decode="gpu")
    with pytest.raises(QuasarError, match="not both"):
        TorchOptions(compile=True, cuda_graphs=True)
    with pytest.raises(QuasarError, match="--cuda-graphs runs on CUDA only"):
        TorchOptions(cuda_graphs=True).check_device("cpu")
    with pytest.raises(QuasarError, match="apply to the torch backend"):
        Scorer(model, backend="onnxruntime", torch_options=TorchOptions())
    with pytest.raises(QuasarError, match="TorchOptions"):
        Scorer(model, backend="torch", torch_options={"precision": "fp16"})


def test_cpu_default_keeps_the_cpu_pipeline(model):
    """On the CPU the torch backend decodes with OpenCV unless asked (``device_decode='auto'``)."""
    from quasar.runtime.pipeline import Pipeline

    with Scorer(model, backend="torch", device="cpu") as s:
        assert type(s.pipeline) is Pipeline


def test_score_command_takes_the_torch_options(tmp_path, model, capsys):
    from quasar.cli import main

    img = tmp_path / "a.jpg"
    img.write_bytes(jpeg(pattern(96, 128)))
    out = tmp_path / "out.csv"
    assert main(["score", str(img), "--model", model, "--backend", "torch", "--device", "cpu", "--device-decode", "on",
                 "-o", str(out), "-q"]) == 0
    assert out.read_text().splitlines()[1].startswith(str(img))
    assert main(["score", str(img), "--model", model, "--precision", "fp16", "-o", str(tmp_path / "b.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("need --backend torch (not --ray)") and len(err) == 1
    assert main(["score", str(img), "--model", model, "--backend", "torch", "--device", "cpu", "--cuda-graphs",
                 "-o", str(tmp_path / "c.csv")]) == 2
    assert "--cuda-graphs runs on CUDA only" in capsys.readouterr().err


def test_pinned_pool_reuses_a_buffer_once_given_back():
    """The staging pool (page-locked on CUDA; plain memory here, pinning needs a CUDA driver)."""
    import types

    from quasar.runtime.backends.torch_device import PinnedPool

    made = []

    def empty(n, dtype):
        t = torch.empty(n, dtype=dtype)
        made.append(t)
        return types.SimpleNamespace(pin_memory=lambda: t)

    pool = PinnedPool(types.SimpleNamespace(empty=empty, uint8=torch.uint8))
    a, b = pattern(30, 40), pattern(20, 50, 1)
    buf_a, view_a = pool.stage(a)
    np.testing.assert_array_equal(view_a.numpy(), a)
    buf_b, _ = pool.stage(b)  # a is still in flight: a second buffer
    assert len(made) == 2 and buf_a.numel() == 4096 and buf_a.numel() >= a.nbytes
    pool.give_back(buf_a)
    buf_c, view_c = pool.stage(b)  # same size class: the buffer given back, no new allocation
    assert buf_c is buf_a and len(made) == 2
    np.testing.assert_array_equal(view_c.numpy(), b)


def test_a_spec_without_a_device_resize_keeps_the_cpu_pipeline_or_says_why(model, monkeypatch):
    """``opencv_area`` (spec version 1) has no device implementation: ``auto`` keeps the CPU pipeline,
    ``on`` is one line naming the reason."""
    import dataclasses

    from quasar.runtime.backends.torch_backend import TorchBackend
    from quasar.runtime.model import load_model_info

    info = load_model_info(model)
    old = dataclasses.replace(info, spec=dataclasses.replace(info.spec, resampler="opencv_area"))
    backend = TorchBackend(old, device="cpu", options=TorchOptions(device_decode="on"))
    try:
        with pytest.raises(QuasarError, match="opencv_area resampler has no device implementation"):
            backend.make_pipeline(Preparer(old.spec), batch_size=4, workers=1)
        backend.options = TorchOptions(device_decode="auto")
        assert backend.make_pipeline(Preparer(old.spec), batch_size=4, workers=1) is None
    finally:
        backend.close()


CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device (bash .ci/gpu and python -m benchmarks.gpu_check run this)")
@pytest.mark.parametrize("options", [TorchOptions(), TorchOptions(pinned=False), TorchOptions(precision="fp16"),
                                     TorchOptions(cuda_graphs=True), TorchOptions(device_decode="off")],
                         ids=["fp32-pinned", "fp32-pageable", "fp16", "cuda-graphs", "cpu-decode"])
def test_cuda_path_matches_the_cpu(options, photo_jpegs, tmp_path, model, torch_device_scorer):
    """Not yet run (no GPU here): the same inputs on CUDA as on the CPU device path, errors included."""
    (tmp_path / "bad.jpg").write_bytes(truncated(jpeg(pattern(200, 300))))
    (tmp_path / "b.png").write_bytes(encode(pattern(300, 400, 1)))
    files = photo_jpegs + [str(tmp_path / "bad.jpg"), str(tmp_path / "b.png")]
    ref = torch_device_scorer.score(files)
    with Scorer(model, backend="torch", device="cuda", batch_size=4, torch_options=options) as s:
        got = s.score(files)
    tol = 2e-3 if options.precision == "fp32" else 0.1
    for a, b in zip(ref, got, strict=True):
        assert a.source == b.source and a.error == b.error
        if a.ok:
            assert max(abs(a.scores[h] - b.scores[h]) for h in a.scores) <= tol, a.source
