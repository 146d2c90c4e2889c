"""``quasar serve`` as a user runs it: a subprocess that joins the session's Ray cluster, answers on a
free local port, and exits 0 on SIGTERM after answering what it holds. Plus the missing-extra line."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures_images import encode, pattern
from test_scale_serve import request, spawn_serve

from quasar.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quasar_serve_answers_and_stops_on_sigterm(ray_nodes, tmp_path):
    proc, url = spawn_serve(ray_nodes.address, ["--max-batch-size", "4", "--batch-wait-ms", "2000",
                                                "--access-log", str(tmp_path / "access.jsonl")],
                            tmp_path / "serve.log")
    port = url.rsplit(":", 1)[1]
    try:
        img = encode(pattern(120, 160), ".png")
        out: dict = {}
        t = threading.Thread(target=lambda: out.update(r=request(url + "/score", img, "image/png")))
        t.start()  # waits ~2 s in the batch queue (--batch-wait-ms), so SIGTERM finds it in flight
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
        t.join(30)
        status, body = out["r"]
        assert status == 200 and set(body.get("scores", {})) >= {"quality"}, (status, body)
        text = (tmp_path / "serve.log").read_text()
        assert f"on http://127.0.0.1:{port}" in text and "stopping" in text
        access = [json.loads(line) for line in (tmp_path / "access.jsonl").read_text().splitlines()]
        scored = [a for a in access if a["path"] == "/score"]
        assert len(scored) == 1 and scored[0]["status"] == 200 and scored[0]["images"] == 1, access
        assert len(scored[0]["request_id"]) >= 8 and {a["path"] for a in access} == {"/healthz", "/score"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_missing_ray_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(["serve", "--port", "8123"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'quasar-engine[ray]'" in err and "quasar serve" in err
    assert main(["score", "x.jpg", "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "quasar-engine[ray]" in err


# ---------------------------------------------------------------- exposure, tokens, replicas (issue 26)

@pytest.fixture
def no_ray_start(monkeypatch):
    """Stop ``quasar serve`` where it would start or join Ray: the checks before that are what is tested."""
    pytest.importorskip("ray")
    import quasar.scale.cluster as cluster
    from quasar.errors import QuasarError

    def refuse(*_a, **_k):
        raise QuasarError("reached the Ray start")

    monkeypatch.setattr(cluster, "connect", refuse)


def _serve_err(capsys, *argv: str) -> tuple[int, str]:
    from test_scale_serve import free_port

    rc = main(["serve", "--port", str(free_port()), *argv])
    return rc, capsys.readouterr().err.strip()


def test_non_loopback_host_needs_a_token_or_insecure(no_ray_start, capsys, tmp_path):
    rc, err = _serve_err(capsys, "--host", "0.0.0.0")
    assert rc == 2 and err.count("\n") == 0 and "--token-file" in err and "--insecure" in err, err
    assert _serve_err(capsys, "--host", "0.0.0.0", "--insecure")[1].endswith("reached the Ray start")
    tokens = tmp_path / "tokens"
    tokens.write_text("# rotated monthly\nfirst-token-0123456789abcdef\n\nsecond-token-0123456789abcdef\n")
    assert _serve_err(capsys, "--host", "0.0.0.0", "--token-file", str(tokens))[1].endswith("reached the Ray start")
    assert _serve_err(capsys)[1].endswith("reached the Ray start")  # loopback: no token needed
    (tmp_path / "short").write_text("abc\n")
    rc, err = _serve_err(capsys, "--token-file", str(tmp_path / "short"))
    assert rc == 2 and "at least 16 characters" in err and err.count("\n") == 0
    rc, err = _serve_err(capsys, "--token-file", str(tmp_path / "missing"))
    assert rc == 2 and "cannot read it" in err


def test_token_check_and_loopback():
    from quasar.scale.auth import authorized, digest, is_loopback

    d = (digest("first-token-0123456789abcdef"), digest("second-token-0123456789abcdef"))
    assert authorized("Bearer second-token-0123456789abcdef", d) and authorized("bearer first-token-0123456789abcdef", d)
    assert not any(authorized(h, d) for h in (None, "", "Bearer", "Bearer wrong", "first-token-0123456789abcdef",
                                              "Basic first-token-0123456789abcdef"))
    assert authorized(None, ())  # no tokens: open
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")


def test_replicas_and_autoscaling_options_reach_the_deployment(no_ray_start, capsys):
    pytest.importorskip("ray")
    from quasar.app.serve import scaling
    from quasar.cli import build_parser
    from quasar.scale.serve import ServiceOptions, build_app

    def config(*argv: str):
        args = build_parser().parse_args(["serve", *argv])
        return build_app(None, ServiceOptions(max_batch_size=8), **scaling(args))._bound_deployment._deployment_config

    fixed = config("--replicas", "3")
    assert fixed.num_replicas == 3 and fixed.autoscaling_config is None
    auto = config("--min-replicas", "0", "--max-replicas", "4", "--target-ongoing-requests", "12")
    a = auto.autoscaling_config
    assert (a.min_replicas, a.max_replicas, a.target_ongoing_requests) == (0, 4, 12)
    assert config("--max-replicas", "2").autoscaling_config.target_ongoing_requests == 16  # 8 x 2 batches
    assert config().num_replicas == 1
    for argv, why in ((["--replicas", "2", "--max-replicas", "3"], "give one or the other"),
                      (["--min-replicas", "3", "--max-replicas", "2"], "over --max-replicas"),
                      (["--target-ongoing-requests", "4"], "needs --min-replicas")):
        rc, err = _serve_err(capsys, *argv)
        assert rc == 2 and why in err and err.count("\n") == 0, err


def test_serve_yaml_example_is_a_valid_serve_config_and_builds(tiny):
    """docs/serve.yaml parses into Ray Serve's config schema (what `serve deploy` checks first), its import
    path builds the app from its args, and its deployment section names the app's deployment."""
    pytest.importorskip("ray")
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from quasar.scale import serve as service

    raw = yaml.safe_load((ROOT / "docs" / "serve.yaml").read_text())
    config = ServeDeploySchema.model_validate(raw)
    (app,) = config.applications
    assert app.import_path == "quasar.scale.serve:app_builder" and config.http_options.host == "127.0.0.1"
    (dep,) = app.deployments
    assert dep.name == service.DEPLOYMENT and dep.num_replicas == "auto" and dep.autoscaling_config["max_replicas"] == 4
    built = service.app_builder({**app.args, "model": tiny})
    assert built._bound_deployment.name == dep.name
    assert built._bound_deployment.init_args[1]["limits"]["max_files"] == 64
    from quasar.errors import QuasarError

    with pytest.raises(QuasarError):
        service.app_builder({**app.args})  # the example's model path does not exist here: one line at deploy
