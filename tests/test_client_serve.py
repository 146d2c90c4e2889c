"""``ServiceClient`` and ``quasar score --url`` against a real ``quasar serve`` (a subprocess on the session's
Ray cluster, started once for the module): scores equal local scoring to 1e-6 on real photos, the CSV and
JSONL written are local scoring's, ``--resume`` sends only what is missing, a bad file gets its error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import pytest
from test_scale_serve import spawn_serve

from quasar.cli import main
from quasar.client import ServiceClient
from quasar.runtime import Scorer
from quasar.runtime.output import read_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6


@pytest.fixture(scope="module")
def service(ray_nodes, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    proc, url = spawn_serve(ray_nodes.address, ["--max-files", "4", "--max-batch-size", "8"], log_path)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def inputs(photos, tmp_path_factory):
    """Nine real photos (six PNG, two JPEG saved from them, one large enough for reduced JPEG decoding)
    and a file that is not an image."""
    d = tmp_path_factory.mktemp("in")
    paths = [p.path for p in photos[:6]]
    for i, p in enumerate(photos[6:8]):
        img = cv2.imread(p.path)
        if i == 1:
            img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2))
        out = d / f"photo {i}.jpg"
        cv2.imwrite(str(out), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(out))
    (d / "bad.jpg").write_bytes(b"%PDF-1.4 not an image at all")
    paths.insert(3, str(d / "bad.jpg"))
    return paths


def same_scores(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= TOL for k in a)


def test_client_scores_equal_local_scoring(service, inputs):
    with Scorer() as s:
        local = s.score(inputs)
    with ServiceClient(service, batch_files=3, margins=True) as c:
        remote = c.score(inputs)
        assert c.info.heads == tuple(s.info.heads) and c.info.summary_heads == tuple(s.info.summary_heads)
    assert [r.source for r in remote] == inputs
    for lo, re_ in zip(local, remote, strict=True):
        assert lo.ok == re_.ok and lo.error == re_.error, (lo, re_)
        if lo.ok:
            assert same_scores(lo.scores, re_.scores) and same_scores(lo.margins, re_.margins), (lo, re_)
    assert sum(r.ok for r in remote) == len(inputs) - 1 and remote[3].error.startswith("not an image")


def _rows(path) -> list[dict]:
    return read_rows(str(path)).rows


def _same_rows(a: list[dict], b: list[dict]) -> None:
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and x["error"] == y["error"] and x.get("reason") == y.get("reason"), (x, y)
        for k in x:
            if k not in ("path", "error", "reason") and x[k] not in ("", None):
                assert abs(float(x[k]) - float(y[k])) <= TOL + 5e-7, (k, x, y)  # CSV: 6 decimals


def test_score_url_writes_local_scorings_csv_and_jsonl(service, inputs, tmp_path):
    for name, extra in (("out.csv", []), ("out.jsonl", ["--explain", "--margins"])):
        assert main(["score", "-q", "-o", str(tmp_path / f"local-{name}"), *extra, *inputs]) == 0
        assert main(["score", "-q", "--url", service, "-o", str(tmp_path / f"remote-{name}"), *extra, *inputs]) == 0
        _same_rows(_rows(tmp_path / f"local-{name}"), _rows(tmp_path / f"remote-{name}"))


def test_score_url_resumes(service, inputs, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert main(["score", "-q", "--url", service, "-o", str(out), *inputs[:4]]) == 0
    assert main(["score", "--url", service, "-o", str(out), "--resume", *inputs]) == 0
    assert "5 of 5 scored, 0 failed, 4 already in the output" in capsys.readouterr().err
    assert main(["score", "-q", "-o", str(tmp_path / "local.csv"), *inputs]) == 0
    _same_rows(_rows(tmp_path / "local.csv"), _rows(out))
