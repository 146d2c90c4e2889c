"""``quasar report``: reading results files, the self-contained page, and the page in a real browser."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quasar.cli import main
from quasar.report.build import build_report, histogram_svg
from quasar.report.data import read_results

HEADS = ("quality", "aesthetics")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("onnx")
    from quasar.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture()
def folder(tmp_path):
    """Four real-looking images (one rotated by EXIF, one with a hostile name) and one broken file."""
    rng = np.random.default_rng(0)
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        img = np.clip(rng.normal(120 + 30 * i, 40, (90 + 10 * i, 120, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"img{i}.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.full((60, 100, 3), 200, np.uint8)).save(d / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(d / '"><img src=x onerror=alert(1)>.png')
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


def _score(tiny, folder, out, fmt_args=()):
    assert main(["score", str(folder), "--model", tiny, "-o", str(out), "-q", "--margins", *fmt_args]) == 0


@pytest.mark.parametrize("name", ["scores.csv", "scores.jsonl"])
def test_read_results(tiny, folder, tmp_path, name):
    out = tmp_path / name
    _score(tiny, folder, out)
    data = read_results(str(out))
    assert data.heads == list(HEADS)  # *_margin columns are not heads
    assert len(data.photos) == 6
    failed = [p for p in data.photos if p.error]
    assert len(failed) == 1 and failed[0].path.endswith("broken.jpg") and not failed[0].scores
    assert all(p.file is not None for p in data.photos)
    assert not data.has_groups


def test_results_with_relative_paths_and_images_root(tiny, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder)
    _score(tiny, ".", tmp_path / "rel.csv")
    monkeypatch.chdir(tmp_path)
    assert all(p.file is None for p in read_results(str(tmp_path / "rel.csv")).photos)
    assert all(p.file is not None for p in read_results(str(tmp_path / "rel.csv"), str(folder)).photos)


def test_page_is_self_contained(tiny, folder, tmp_path):
    out = tmp_path / "scores.csv"
    _score(tiny, folder, out)
    page = tmp_path / "report.html"
    stats = build_report(read_results(str(out)), str(page), workers=1)
    html = page.read_text()
    assert stats["photos"] == 6 and stats["failed"] == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) and "@import" not in html
    assert "<link" not in html and html.count("<script") == 3  # two JSON blocks, one inline script
    thumbs = json.loads(re.search(r'id="quasar-thumbs">(.*?)</script>', html, re.S).group(1))
    assert len(thumbs) == 5 and all(t.startswith("data:image/webp;base64,") for t in thumbs)
    data = json.loads(re.search(r'id="quasar-data">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    rotated = next(p for p in data["photos"] if p[0].endswith("rotated.jpg"))
    assert (rotated[3], rotated[4]) == (60, 100)  # EXIF orientation applied: portrait thumbnail
    webp = base64.b64decode(thumbs[rotated[2]].split(",", 1)[1])
    assert Image.open(__import__("io").BytesIO(webp)).size == (60, 100)
    block = html.split('id="quasar-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and any(p[0].endswith('"><img src=x onerror=alert(1)>.png') for p in data["photos"])
    assert "not a JPEG" in html or "corrupt" in html  # the failure's reason is in the data


def test_thumbnails_beside_the_page(tiny, folder, tmp_path):
    out = tmp_path / "scores.jsonl"
    _score(tiny, folder, out)
    page = tmp_path / "r.html"
    build_report(read_results(str(out)), str(page), thumbs="files", workers=2)
    files = sorted(os.listdir(tmp_path / "r_files"))
    assert len(files) == 5 and all(f.endswith(".webp") for f in files)
    assert '"r_files/000000.webp"' in page.read_text()


def test_histogram_counts():
    svg = histogram_svg("quality", np.array([0.01, 0.02, 0.5, 0.99, 1.0]))
    counts = [int(m) for m in re.findall(r"</?title>[^<]*?: (\d+)</title>", svg)]
    assert len(counts) == 20 and sum(counts) == 5 and counts[0] == 2 and counts[-1] == 2
    assert "mean 0.504" in svg


def test_score_report_in_one_go(tiny, folder, tmp_path):
    page = tmp_path / "one.html"
    assert main(["score", str(folder), "--model", tiny, "-o", str(tmp_path / "s.csv"), "--report", str(page),
                 "-q"]) == 0
    assert page.stat().st_size > 1000
    assert main(["report", str(tmp_path / "s.csv"), "-o", str(tmp_path / "two.html"), "--sort", "nope", "-q"]) == 2


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    exe = _chromium()
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=8000",
                           *args], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install -y chromium); "
                                                "the headless-browser test of the report needs it")
def test_page_renders_and_images_load_in_chromium(tiny, folder, tmp_path):
    out = tmp_path / "scores.csv"
    _score(tiny, folder, out)
    page = tmp_path / "report.html"
    build_report(read_results(str(out)), str(page), workers=2)
    dom = _run_chromium(["--dump-dom", page.as_uri() + "#eager"], tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body))
    assert attrs["cards"] == "5", attrs  # five scored photos rendered as cards
    assert attrs["img-total"] == "5" and attrs["img-loaded"] == "5" and attrs["img-failed"] == "0", attrs
    assert '<img src="x"' not in dom.stdout  # the hostile file name stayed text, never became an element
    failed = _run_chromium(["--dump-dom", page.as_uri() + "#failed"], tmp_path / "profile2")
    rows = re.findall(r'<td class="p">([^<]*)</td><td>([^<]*)</td>', failed.stdout)
    assert len(rows) == 1 and rows[0][0].endswith("broken.jpg") and "JPEG" in rows[0][1], rows
    shot = tmp_path / "shot.png"
    r = _run_chromium([f"--screenshot={shot}", page.as_uri() + "#eager"], tmp_path / "profile3")
    assert r.returncode == 0 and shot.exists()
    px = np.asarray(Image.open(shot).convert("RGB"))
    assert px.shape == (900, 1280, 3) and px.std() > 20  # not a blank page


@pytest.mark.parametrize("how", ["link in the thumbnail folder", "photo in the thumbnail folder"])
def test_thumbnails_never_overwrite_an_input(tiny, folder, tmp_path, how):
    from quasar.errors import QuasarError

    files_dir = tmp_path / "r_files"
    if how == "link in the thumbnail folder":
        files_dir.mkdir()
        os.symlink(folder / "img0.jpg", files_dir / "000001.webp")  # a thumbnail name, pointing at a photo
        fmt, victim = "webp", folder / "img0.jpg"
    else:  # the photos themselves live where the thumbnails go, named like thumbnails
        shutil.copytree(folder, files_dir)
        for i in range(3):
            os.rename(files_dir / f"img{i}.jpg", files_dir / f"{i:06d}.jpg")
        folder, fmt, victim = files_dir, "jpeg", files_dir / "000000.jpg"
    before = victim.read_bytes()
    out = tmp_path / "scores.jsonl"
    _score(tiny, folder, out)
    with pytest.raises(QuasarError, match="over an input"):
        build_report(read_results(str(out)), str(tmp_path / "r.html"), thumbs="files", workers=2, fmt=fmt)
    assert victim.read_bytes() == before
    assert not (tmp_path / "r.html").exists()


def test_failed_thumbnail_write_leaves_no_partial_file(tiny, folder, tmp_path):
    """A write that fails half-way (here: the file size limit, as a full disk would) leaves only whole
    thumbnails, and no temporary file."""
    import resource
    import signal
    import sys

    out = tmp_path / "scores.jsonl"
    _score(tiny, folder, out)
    code = ("import sys\nfrom quasar.errors import QuasarError\nfrom quasar.report.build import build_report\n"
            "from quasar.report.data import read_results\n"
            "try:\n    build_report(read_results(sys.argv[1]), sys.argv[2], thumbs='files', workers=1)\n"
            "except QuasarError as e:\n    print(e)\n    sys.exit(2)\n")

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "r.html")], preexec_fn=limit,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "cannot write the thumbnail" in r.stdout, (r.stdout, r.stderr)
    left = sorted(os.listdir(tmp_path / "r_files"))
    assert not [f for f in left if f.startswith(".") or f.endswith(".tmp")], left
    for f in left:  # every thumbnail there is whole
        with Image.open(tmp_path / "r_files" / f) as im:
            im.load()
    assert not (tmp_path / "r.html").exists()
