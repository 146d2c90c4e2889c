"""Shared fixtures: real photos (installed once into the user cache) and small generated images."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def photos():
    """All working-copy photos (Debian wallpapers + scikit-image), each with .path/.source/.name/.split."""
    from quasar.photos import fetch_photos

    return fetch_photos()


@pytest.fixture(scope="session")
def anchor_photos(photos):
    return [p for p in photos if p.split == "anchor"]


@pytest.fixture(scope="session")
def heldout_photos(photos):
    return [p for p in photos if p.split == "heldout"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Path of :func:`quasar.testing.write_tiny_model`'s default graph (native spec, heads quality and
    aesthetics), written once per session; tests only read it."""
    pytest.importorskip("onnx")
    from quasar.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="session")
def skimage_photo_paths():
    import skimage

    d = os.path.join(os.path.dirname(skimage.__file__), "data")
    return [os.path.join(d, n) for n in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")]


@pytest.fixture(scope="session")
def rn50_checkpoint(tmp_path_factory):
    """An open_clip RN50 with random weights, written as a checkpoint file (no CLIP weights offline)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("RN50", pretrained=None)
    path = tmp_path_factory.mktemp("ckpt") / "rn50_random.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def ray_nodes():
    """One simulated two-node Ray cluster (1 CPU per node) for every Ray test of the session.

    Ray is in the dev extra, so a missing install fails here instead of skipping. The test process
    is not connected to it here: ask for :func:`ray_cluster` for that.
    """
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(ray_nodes):
    """The session's cluster with the test process connected to it (``ray.init``) for one test module.

    Disconnected (``ray.shutdown``) when the module ends, so Ray is never left initialised for the
    modules after it: ``quasar score --ray`` run in-process there would otherwise find Ray already
    initialised and use this cluster. Serve apps that tests start are their own to stop; the cluster
    and everything on it go down at session end.
    """
    import ray

    ray.init(address=ray_nodes.address, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray_nodes
    finally:
        ray.shutdown()
