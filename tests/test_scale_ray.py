"""Batch scoring on Ray Data, on a simulated two-node cluster (tests/conftest.py: ray_cluster).

Every row is scored exactly once, by actors on both nodes, with the scores local scoring gives;
``quasar score --ray`` writes the file ``quasar score`` writes, --resume included.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
import ray
from fixtures_images import encode, pattern, truncated

from quasar.cli import main
from quasar.runtime import Scorer
from quasar.scale.raydata import ScoreBatch, score_dataset

pytestmark = pytest.mark.slow  # the cluster takes ~10-30 s to start; the tests after it a few seconds each

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules


class NodeScoreBatch(ScoreBatch):
    """ScoreBatch that also says which node scored each row."""

    def __call__(self, batch):
        import pyarrow as pa

        table = super().__call__(batch)
        node = ray.get_runtime_context().get_node_id()
        return table.append_column("node", pa.array([node] * len(table)))


@pytest.fixture(scope="module")
def inputs(photos, tmp_path_factory):
    """10 real photos, a corrupt file, a truncated PNG and a missing path."""
    d = tmp_path_factory.mktemp("in")
    paths = []
    for p in photos[:10]:
        dst = d / os.path.basename(p.path)
        shutil.copyfile(p.path, dst)
        paths.append(str(dst))
    (d / "corrupt.png").write_bytes(b"not an image")
    (d / "cut.png").write_bytes(truncated(encode(pattern(200, 300), ".png")))
    return d, [*paths, str(d / "corrupt.png"), str(d / "cut.png"), str(d / "missing.jpg")]


@pytest.fixture(scope="module")
def local(inputs):
    _, paths = inputs
    with Scorer() as s:
        return {r.source: r for r in s.score(paths)}


def test_two_nodes_score_every_file_once_like_local(ray_cluster, inputs, local, monkeypatch):
    _, paths = inputs
    # both actors up before the first block is handed out: otherwise the one that starts first (its node's
    # worker processes already warm) can take every block while the other is still loading the model
    monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 300)
    # one block per file: with a single block, one actor could take every batch before the other starts
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=len(paths))
    rows = score_dataset(ds, actors=2, actor_cpus=1, batch_size=2, udf=NodeScoreBatch).take_all()
    assert sorted(r["path"] for r in rows) == sorted(paths)  # every file exactly once
    assert len({r["node"] for r in rows}) == 2, "both nodes should have scored"
    for r in rows:
        want = local[r["path"]]
        if want.error is not None:
            assert r["error"] == want.error and all(np.isnan(r[h]) for h in local[paths[0]].scores)
        else:
            assert r["error"] is None
            for h, v in want.scores.items():
                assert abs(r[h] - v) <= 1e-5, (r["path"], h)


def test_bytes_from_read_binary_files_score_like_paths(ray_cluster, inputs, local):
    d, paths = inputs
    ds = ray.data.read_binary_files([p for p in paths if os.path.exists(p)], include_paths=True)
    rows = score_dataset(ds, bytes_column="bytes", actors=1, actor_cpus=1, margins=True).take_all()
    assert len(rows) == len(paths) - 1 and "bytes" not in rows[0]
    for r in rows:
        want = local[r["path"]]
        assert r["error"] == want.error
        if want.error is None:
            assert abs(r["quality"] - want.scores["quality"]) <= 1e-5
            assert abs(r["quality_margin"] - want.margins["quality"]) <= 1e-5


def _run(args: list[str]) -> int:
    return main(["score", *args, "-q"])


def test_cli_ray_writes_what_local_writes_and_resumes(ray_cluster, inputs, tmp_path):
    d, _ = inputs
    sub = d / "sub"
    sub.mkdir(exist_ok=True)
    shutil.copyfile(next(d.glob("*.png")), sub / "copy.png")
    odd = os.path.join(os.fsencode(str(sub)), b"caf\xe9.png")  # a name that is not UTF-8
    with open(odd, "wb") as f:
        f.write(encode(pattern(90, 120), ".png"))
    (d / "empty").mkdir(exist_ok=True)
    args = [str(d), str(d / "missing.jpg"), str(d / "empty"), "-r", "--explain", "--margins"]
    assert _run([*args, "-o", str(tmp_path / "local.csv")]) == 0
    address = ray_cluster.address
    assert _run([*args, "-o", str(tmp_path / "ray.csv"), "--ray", "--address", address, "--ray-batch", "3"]) == 0
    local_text = (tmp_path / "local.csv").read_text(encoding="utf-8")
    assert_same_results((tmp_path / "ray.csv").read_text(encoding="utf-8"), local_text)
    assert "caf\\xe9.png" in local_text and "is a directory with no image files" in local_text
    # --resume: cut the last rows, and only those are scored again
    lines = local_text.splitlines(keepends=True)
    (tmp_path / "part.jsonl").write_text("", encoding="utf-8")
    jargs = [*args, "-o", str(tmp_path / "part.jsonl")]
    assert _run([*jargs, "--ray", "--address", address]) == 0
    full = (tmp_path / "part.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(full) == len(lines) - 1  # no header in JSON Lines
    (tmp_path / "part.jsonl").write_text("".join(full[:-4]), encoding="utf-8")
    assert _run([*jargs, "--ray", "--address", address, "--resume"]) == 0
    assert (tmp_path / "part.jsonl").read_text(encoding="utf-8").splitlines(keepends=True) == full


def assert_same_results(got: str, want: str) -> None:
    """The same rows, columns, paths, errors and reasons; scores within 2e-6 (ONNX Runtime batches the images
    differently on the actors, and a float32 difference can flip the 6th printed decimal)."""
    import csv
    import io

    g, w = list(csv.reader(io.StringIO(got))), list(csv.reader(io.StringIO(want)))
    assert len(g) == len(w) and g[0] == w[0]
    for rg, rw in zip(g[1:], w[1:], strict=True):
        assert len(rg) == len(rw)
        for a, b in zip(rg, rw, strict=True):
            try:
                assert abs(float(a) - float(b)) <= 2e-6, (rg[0], a, b)
            except ValueError:
                assert a == b


def test_cli_ray_flags_need_ray(capsys):
    assert main(["score", "x.jpg", "--address", "auto"]) == 2
    assert "need --ray" in capsys.readouterr().err
