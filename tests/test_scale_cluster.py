"""Which Ray cluster quasar starts or joins, and how it fails (issue 21, items 13-15).

* without ``--address``: a private cluster of its own, every server of it on 127.0.0.1, even when
  another cluster runs on the machine (``RAY_ADDRESS`` set);
* ``quasar serve`` on a port already in use: one line, rc 2, before Ray starts;
* ``--address`` that cannot be joined: one line after ``--connect-timeout``, not a hang.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from quasar.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _listener(reuseport: bool = False) -> socket.socket:
    s = socket.socket()
    if reuseport:  # what Serve's HTTP proxy (uvicorn) sets: a second quasar serve could share the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize("reuseport", [False, True], ids=["other program", "another quasar serve"])
def test_serve_on_a_port_in_use_is_one_line_before_ray_starts(monkeypatch, capsys, reuseport):
    def no_ray(*args, **kwargs):
        raise RuntimeError("Ray was started although the port is taken")

    monkeypatch.setattr("quasar.scale.cluster.connect", no_ray)
    with _listener(reuseport) as s:
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"port {port} on 127.0.0.1" in err and "already in use" in err, err


def test_score_ray_address_refusing_is_one_line(capsys, tmp_path):
    with _listener() as s:  # a port nobody listens on once closed
        port = s.getsockname()[1]
    rc = main(["score", str(tmp_path / "x.jpg"), "--ray", "--address", f"127.0.0.1:{port}", "--connect-timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0, err
    assert f"cannot join the Ray cluster at 127.0.0.1:{port}" in err and "refused" in err.lower(), err


@pytest.mark.parametrize("address", ["auto", "HOSTPORT"])
def test_score_ray_address_that_never_joins_gives_up_after_the_timeout(tmp_path, address):
    """A port that accepts TCP but speaks no Ray: Ray would retry for ever (14 min for HOST:PORT)."""
    with _listener() as s:
        hostport = f"127.0.0.1:{s.getsockname()[1]}"
        env = {**ENV, "RAY_ADDRESS": hostport}  # where `auto` looks first
        cmd = [sys.executable, "-m", "quasar", "score", str(tmp_path / "x.jpg"), "--ray",
               "--address", address.replace("HOSTPORT", hostport), "--connect-timeout", "3"]
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip()
    assert err.count("\n") == 0, err  # nothing from Ray around the one line
    assert "cannot join the Ray cluster" in err and "not joined within 3 s (--connect-timeout)" in err, err


CHILD = """
import json, os, sys
import ray
from quasar.scale.cluster import connect, disconnect
started = connect(None, num_cpus=1)
print(json.dumps({"started": started, "gcs": ray.get_runtime_context().gcs_address}), flush=True)
sys.stdin.readline()  # the test lists this cluster's sockets meanwhile
disconnect(started)
"""


def _descendants(root: int) -> set[int]:
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, grew = {root}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in found} - found
        found |= new
        grew = bool(new)
    return found


def _listening(pids: set[int]) -> list[str]:
    """``ip:port`` of every TCP socket in LISTEN state that one of ``pids`` holds (Linux /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                hexip, hexport = f[1].split(":")
                raw = bytes.fromhex(hexip)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # kernel order per word
                ip = ipaddress.ip_address(raw)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                    ip = ip.ipv4_mapped
                out.append(f"{ip}:{int(hexport, 16)}")
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads listening sockets from /proc")
def test_without_address_a_private_cluster_on_loopback_even_beside_another(ray_nodes):
    env = {**ENV, "RAY_ADDRESS": ray_nodes.address}  # another cluster runs here and says where
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.poll() is not None else "no answer"
        got = json.loads(line)
        assert got["started"] and got["gcs"] != ray_nodes.address, got  # its own, not the one running
        sockets = _listening(_descendants(proc.pid))
        assert len(sockets) >= 3, sockets  # GCS, raylet, workers, agents
        assert all(ipaddress.ip_address(s.rsplit(":", 1)[0]).is_loopback for s in sockets), sockets
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# Last in the module: it connects this process to the test cluster (the ray_cluster fixture), and the
# tests above need a process where Ray is not initialised (the fixture disconnects at module end).
def test_score_ray_address_of_another_cluster_when_ray_is_initialised_is_one_line(ray_cluster, capsys, tmp_path):
    """Before: Ray already initialised in the process (an embedder's ray.init) made ``--address`` count
    for nothing: the files were scored on the cluster already joined, whatever address was named."""
    import ray

    assert ray.is_initialized()
    with _listener() as s:  # answers TCP but is not the cluster this process is connected to
        other = f"127.0.0.1:{s.getsockname()[1]}"
        rc = main(["score", str(tmp_path / "x.jpg"), "--ray", "--address", other, "--connect-timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0, err
    assert f"cannot join the Ray cluster at {other}: this process is already connected" in err, err
    with _listener() as s:
        port = s.getsockname()[1]
    rc = main(["score", str(tmp_path / "x.jpg"), "--ray", "--address", f"127.0.0.1:{port}", "--connect-timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "refused" in err.lower() and err.count("\n") == 0, err
