"""Missing optional dependencies are one line naming the extra to install (issue 11), and the other
one-line errors of a first `quasar centroids build`: --text without a text tower, an open_clip
pretrained tag offline, a --merge-into head conflict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quasar.cli import main
from quasar.errors import QuasarError
from quasar.extras import MissingExtra, require

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _python(code: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this checkout's ``quasar``."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          cwd=REPO, env={**ENV, **(env or {})}, timeout=timeout)


def _without(modules: list[str], argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """``quasar ARGV`` in a subprocess where importing each of ``modules`` fails as if not installed."""
    code = f"""
        import sys
        for m in {modules!r}:
            sys.modules[m] = None  # `import m` now raises ModuleNotFoundError(name=m)
        from quasar.cli import main
        sys.exit(main(sys.argv[1:]))
    """
    return _python(code, *argv, env=env)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("quasar: error: "), r.stderr
    return lines[0]


# --------------------------------------------------------------------------- missing optional dependencies


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(MissingExtra) as e:
        require("skimage", "photos", "the photo set")
    assert str(e.value) == ("the photo set needs scikit-image, which is not installed: "
                            "pip install 'quasar-engine[photos]'")
    assert isinstance(e.value, QuasarError) and isinstance(e.value, ImportError)
    assert require("json", "x", "y").dumps([1]) == "[1]"


def test_require_reports_a_broken_install(tmp_path, monkeypatch):
    (tmp_path / "brokenpkg_q11.py").write_text("import nonexistent_dependency_q11\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra, match=r"needs brokenpkg_q11, which cannot be imported \(No module named "
                                           r"'nonexistent_dependency_q11'\): pip install 'quasar-engine\[export\]'"):
        require("brokenpkg_q11", "export", "this")


def test_centroids_build_without_torch(tmp_path):
    r = _without(["torch"], ["centroids", "build", "--synthetic", str(tmp_path), "-o", str(tmp_path / "p.json")])
    assert _one_error_line(r) == ("quasar: error: quasar centroids build needs torch, which is not installed: "
                                  "pip install 'quasar-engine[export]'")
    r = _without(["timm"], ["centroids", "build-default", "--check"])
    assert "build-default needs timm" in _one_error_line(r) and "quasar-engine[export]" in r.stderr


@pytest.mark.slow
def test_export_without_onnx(tmp_path):
    r = _without(["onnx"], ["export", "onnx", "--pack", "default", "-o", str(tmp_path / "m.onnx")])
    assert _one_error_line(r) == ("quasar: error: quasar export onnx needs onnx, which is not installed: "
                                  "pip install 'quasar-engine[export]'")
    assert not (tmp_path / "m.onnx").exists()


def test_export_ort_without_onnx(tmp_path):
    from quasar.runtime.model import default_model_path

    r = _without(["onnx"], ["export", "ort", default_model_path(), "-o", str(tmp_path / "m.ort")])
    assert _one_error_line(r) == ("quasar: error: quasar export ort needs onnx, which is not installed: "
                                  "pip install 'quasar-engine[export]'")
    assert not (tmp_path / "m.ort").exists()


def test_evaluate_without_scipy(tmp_path):
    csv_file = tmp_path / "mos.csv"
    csv_file.write_text("path,mos\na.png,1\n")
    r = _without(["scipy"], ["evaluate", "--dataset", str(csv_file)])
    assert _one_error_line(r) == ("quasar: error: quasar evaluate needs scipy, which is not installed: "
                                  "pip install 'quasar-engine[eval]'")


def test_photos_checks_skimage_before_downloading(tmp_path, monkeypatch, capsys):
    from quasar import photos

    def no_download(*a, **k):
        raise AssertionError("downloaded a package before checking scikit-image")

    monkeypatch.setattr(photos, "_apt_download", no_download)
    monkeypatch.setitem(sys.modules, "skimage", None)
    assert photos.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["quasar.photos: error: the photo set needs scikit-image, which is not installed: "
                   "pip install 'quasar-engine[photos]'"]
    assert not any(tmp_path.iterdir())


def test_text_anchors_need_a_text_tower(tmp_path, capsys):
    pytest.importorskip("timm")
    rc = main(["centroids", "build", "--encoder", "effnet-lite0", "--text", "Good photo.", "Bad photo.",
               "-o", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("quasar: error: --text needs an encoder with a text tower") and "effnet-lite0 has none" in err
    assert not (tmp_path / "t.json").exists()


# --------------------------------------------------------------------------- open_clip tags offline


def test_pretrained_tag_or_path():
    pytest.importorskip("torch")
    from quasar.encoders.pretrained import pretrained_tag

    assert pretrained_tag("open_clip:ViT-B-32@openai") == ("ViT-B-32", "openai")
    assert pretrained_tag("open_clip:RN50*@laion2b") == ("RN50", "laion2b")
    assert pretrained_tag("open_clip:RN50@/ckpt/rn50.pt") is None
    assert pretrained_tag("open_clip:RN50@weights.safetensors") is None
    assert pretrained_tag("open_clip:RN50") is None
    assert pretrained_tag("timm:resnet18@x") is None and pretrained_tag("effnet-lite0") is None


def test_unknown_open_clip_tag_is_one_line():
    pytest.importorskip("open_clip")
    from quasar.encoders.pretrained import build_encoder

    with pytest.raises(QuasarError, match=r"'nonsense' is neither a pretrained tag of RN50 \(openai, .*\) nor an "
                                          r"existing checkpoint file"):
        build_encoder("open_clip:RN50@nonsense")


@pytest.mark.slow
def test_open_clip_tag_offline_is_one_line(tmp_path):
    pytest.importorskip("open_clip")
    # HF_HUB_OFFLINE: the hub client fails at once (offline it would retry for about a minute first).
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    r = _without([], ["centroids", "build", "--encoder", "open_clip:RN50@openai", "--text", "Good photo.",
                      "Bad photo.", "-o", str(tmp_path / "t.json")], env=env)
    line = _one_error_line(r)
    assert "the pretrained tag 'openai' needs network access" in line
    assert "offline, pass a checkpoint file instead: open_clip:RN50@/path/to/checkpoint.pt" in line
    assert "ERROR:root" not in r.stderr and "WARNING" not in r.stderr


# --------------------------------------------------------------------------- --merge-into conflicts


def test_merge_conflict_names_the_cli_flag(tmp_path, capsys):
    pytest.importorskip("torch")
    rc = main(["centroids", "build", "--synthetic", str(tmp_path), "--merge-into", "default",
               "-o", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "default already has a head 'quality'; pass --replace to overwrite it" in err
    assert "replace=True" not in err
