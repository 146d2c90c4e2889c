"""The reliability figures, re-measured as a whole: hostile inputs, SIGKILL then --resume, malformed HTTP.

    python benchmarks/reliability.py [--native build/native/quasar-score] [--native-model M.onnx] [--skip-http]

Three parts, each written into ``results/reliability.{json,md}``:

1. **Hostile-input corpus**: one file (or path) per kind, built here from the test suite's own
   generators (``tests/fixtures_images.py``: broken and awkward files; ``tests/test_runtime_limits.py``:
   header bombs; ``tests/test_data_safety.py``: a PNG that makes libpng warn) plus the path-level kinds
   (a FIFO, a folder named like a photo, a symlink loop, a name that is not UTF-8, ...). Every path is
   named on one ``score`` command line, in Python (``python -m quasar score``, the default model) and
   in the native ``quasar-score`` (the static model it runs; skipped when not built). A kind passes when
   the run ends by itself (no signal, no hang: 300 s), with no traceback, and the path has exactly
   one row whose outcome is the expected one (scored / a one-line error; the native CLI does not read
   GIFs: documented, so its expected outcome there is an error). The kinds that could exhaust memory
   (header bombs, a small JPEG with a 1 GiB tail) are also scored alone: peak RSS at most 600 MB.
2. **SIGKILL then --resume**, in both CLIs: 60 photos in a folder, ``score DIR -o out.csv --resume``
   killed with SIGKILL three times (after 10, 25 and 40 rows are on disk), then run to the end; the
   file must then hold each photo exactly once, every row whole, one header.
3. **Malformed HTTP requests** (``--skip-http`` to leave out): ``quasar serve``'s service on a private
   loopback cluster (read timeout 3 s, 2 MiB bodies, 4 files a request), one raw request per kind over
   a socket; each kind passes with a 4xx of its expected set (the service's own refusals carry a JSON
   ``error``), and after all of them the replica still answers ``/healthz`` and scores a photo.

Bounded: every subprocess, socket and request has a timeout; under 5 minutes on 2 cores (run it under
``nice``). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixtures_images import (  # noqa: E402
    awkward_files,
    broken_files,
    corrupt_png,
    encode,
    jpeg,
    jpeg_with_orientation,
    pattern,
    png_header_only,
    truncated,
)
from quasar_bench.results import write_results  # noqa: E402
from test_data_safety import _libpng_warning_png  # noqa: E402
from test_runtime_limits import jpeg_claiming, tiff_with_late_ifd  # noqa: E402
from test_scale_http import multipart  # noqa: E402
from test_scale_serve import BAD  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
TIMEOUT_S = 300
ALONE_RSS_MB = 600  # kinds that could exhaust memory are also run alone: peak RSS at most this (issue 9's bound)
SCORED, ERROR, EITHER = "scored", "error", "scored or error"


# ------------------------------------------------------------------------------------------- 1. the corpus


def build_corpus(d: Path) -> list[dict]:
    """Write every kind under ``d``; ``[{kind, path, expect, native_expect}]``."""
    kinds: list[dict] = []

    def add(kind: str, name: str | bytes, data: bytes | None, expect: str, native: str | None = None,
            alone: bool = False) -> str:
        path = os.path.join(os.fsencode(d), name) if isinstance(name, bytes) else str(d / name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        kinds.append({"kind": kind, "path": os.fsdecode(path), "expect": expect, "native_expect": native or expect,
                      "alone": alone})
        return path

    for name, (data, _) in broken_files().items():
        add(f"broken: {name}", name, data, ERROR)
    for name, data in awkward_files().items():
        add(f"awkward: {name}", name, data, SCORED, ERROR if name.endswith(".gif") else None)
    img = pattern(120, 160)
    add("JPEG claiming 20000x20000, stray byte after APP0", "claim.jpg", jpeg_claiming(20000, 20000), ERROR,
        alone=True)
    add("TIFF whose directory sits after 1 MiB", "late.tif", tiff_with_late_ifd(20000, 20000), ERROR, alone=True)
    add("BigTIFF whose directory sits after 1 MiB", "late_big.tif", tiff_with_late_ifd(20000, 20000, big=True), ERROR)
    add("PNG header claiming 0x0", "zero_size.png", png_header_only(0, 0), ERROR)
    add("strip 16384x4", "strip.png", encode(np.full((4, 16384, 3), 90, np.uint8), ".png"), ERROR)
    add("strip 8x8000", "tall.png", encode(np.full((8000, 8, 3), 90, np.uint8), ".png"), ERROR)
    add("random bytes", "random.jpg", np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes(), ERROR)
    add("NUL bytes", "nul.png", bytes(4096), ERROR)
    add("corrupt PNG CRC", "crc.png", corrupt_png(img), ERROR)
    add("truncated progressive JPEG", "prog.jpg",
        truncated(encode(pattern(300, 400), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                  0.4), EITHER)
    add("PNG named .jpg", "png_inside.jpg", encode(img, ".png"), SCORED)
    add("EXIF orientation 9 (invalid)", "orient9.jpg", jpeg_with_orientation(img, 9), SCORED)
    add("WebP", "w.webp", encode(img, ".webp"), SCORED)
    add("BMP", "b.bmp", encode(img, ".bmp"), SCORED)
    add("TIFF", "t.tif", encode(img, ".tif"), SCORED)
    p = add("PNG that makes libpng warn (bad iCCP)", "iccp.png", None, SCORED)
    _libpng_warning_png(Path(p))
    p = add("small JPEG followed by a 1 GiB sparse tail", "tail.jpg", None, ERROR, alone=True)
    with open(p, "wb") as f:
        f.write(jpeg(pattern(64, 64)))
        f.truncate(1 << 30)
    p = add("FIFO named like a photo", "fifo.jpg", None, ERROR)
    os.mkfifo(p)
    p = add("folder named like a photo", "folder.jpg", None, ERROR)
    os.mkdir(p)
    p = add("symlink loop", "loop.jpg", None, ERROR)
    os.symlink("loop.jpg", p)
    p = add("dangling symlink", "dangling.jpg", None, ERROR)
    os.symlink("nowhere.jpg", p)
    add("missing file", "missing.jpg", None, ERROR)
    good = encode(img, ".png")
    add("name not UTF-8", b"bad\xff\xfe.png", good, SCORED)
    add("name with CR and LF", "cr\rlf\n.png", good, SCORED)
    add("name starting with = (formula)", "=cmd.png", good, SCORED)
    add("name of 250 bytes", "n" * 246 + ".png", good, SCORED)
    return kinds


def rows_of(out: str) -> list[dict]:
    from quasar.runtime.pathtext import decode_text

    rows = []
    with open(out, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            r["path"] = decode_text(r["path"])
            rows.append(r)
    return rows


def run_measured(argv: list[str], cwd: str | None = None, timeout: float = TIMEOUT_S) -> dict:
    """Run ``argv``; rc (negative: a signal), seconds, peak RSS (MB, its own), stderr, timed out."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=ENV,
                                cwd=cwd)
        deadline, timed_out = time.monotonic() + timeout, False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                timed_out = True
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return {"rc": proc.returncode, "seconds": time.perf_counter() - t, "peak_rss_mb": usage.ru_maxrss / 1024,
            "timed_out": timed_out, "stderr": text}


def corpus_run(name: str, cli: list[str], kinds: list[dict], d: Path, expect_key: str) -> dict:
    out = str(d.parent / f"{name}.jsonl")
    run = run_measured([*cli, *[k["path"] for k in kinds], "-o", out])
    traceback = "Traceback (most recent call last)" in run["stderr"]
    rows = rows_of(out) if os.path.exists(out) and run["rc"] >= 0 else []
    by_path: dict[str, list] = {}
    for r in rows:
        by_path.setdefault(r["path"], []).append(r)
    results = []
    for k in kinds:
        got = by_path.get(k["path"], [])
        outcome = None if len(got) != 1 else (ERROR if got[0].get("error") else SCORED)
        want = k[expect_key]
        ok = (not run["timed_out"] and run["rc"] in (0, 1) and not traceback and outcome is not None
              and (want == EITHER or outcome == want) and "\n" not in (got[0].get("error") or ""))
        alone_mb = None
        if k["alone"]:  # the same file on its own: what it costs in memory
            alone_mb = run_measured([*cli, k["path"], "-o", str(d.parent / f"{name}-alone.csv")])["peak_rss_mb"]
            ok = ok and alone_mb <= ALONE_RSS_MB
        results.append({"kind": k["kind"], "expect": want, "rows": len(got), "outcome": outcome,
                        "error": got[0].get("error") if len(got) == 1 else None, "alone_peak_rss_mb": alone_mb,
                        "pass": ok})
    return {"runtime": name, "rc": run["rc"], "seconds": run["seconds"], "peak_rss_mb": run["peak_rss_mb"],
            "timed_out": run["timed_out"], "traceback": traceback, "kinds": results,
            "passed": sum(r["pass"] for r in results), "total": len(results)}


# ------------------------------------------------------------------------------- 2. SIGKILL then --resume


def count_rows(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except OSError:
        return 0


def kill_resume(name: str, cli: list[str], folder: str, out: str, n: int, kill_after=(10, 25, 40)) -> dict:
    kills = []
    for threshold in kill_after:
        proc = subprocess.Popen([*cli, folder, "-o", out, "--resume", "-q"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and count_rows(out) < threshold and time.monotonic() < deadline:
            time.sleep(0.01)
        ended_first = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append({"after_rows": count_rows(out), "ended_before_the_kill": ended_first})
    final = run_measured([*cli, folder, "-o", out, "--resume", "-q"])
    with open(out, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    header, rows = table[0], table[1:]
    paths = [r[0] for r in rows]
    whole = all(len(r) == len(header) for r in rows)
    scored = sum(1 for r in rows if not r[-1])
    dupes = len(paths) - len(set(paths))
    missing = n - len(set(paths))
    ok = final["rc"] == 0 and whole and dupes == 0 and missing == 0 and table.count(header) == 1 \
        and not any(k["ended_before_the_kill"] for k in kills)
    return {"runtime": name, "kills": kills, "final_rc": final["rc"], "rows": len(rows), "files": n,
            "duplicates": dupes, "missing": missing, "rows_whole": whole, "scored": scored, "pass": ok}


# ------------------------------------------------------------------------------------ 3. malformed HTTP


BOUNDARY = "quasar-reliability-7d1f"
MP = f"multipart/form-data; boundary={BOUNDARY}"


def http(method: str, path: str, body: bytes = b"", ctype: str | None = "image/png", extra: str = "",
         length: int | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    head += f"Content-Length: {len(body) if length is None else length}\r\n" + extra + "\r\n"
    return head.encode("latin-1") + body


def chunked(body: bytes, ctype: str = "image/png") -> bytes:
    head = (f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    step = 1 << 20
    parts = [f"{len(body[i:i + step]):x}\r\n".encode() + body[i:i + step] + b"\r\n" for i in range(0, len(body), step)]
    return head + b"".join(parts) + b"0\r\n\r\n"


def http_kinds(good: bytes, max_body: int) -> list[tuple[str, bytes, set[int], str]]:
    """(kind, raw request, accepted statuses, who answers: "service" (JSON error), "proxy" or "any").
    The limits must be those of ``http_run`` (the ones tests/test_scale_serve.py's BAD assumes)."""
    img = pattern(120, 160)
    big = png_header_only(8000, 6000)  # 48 MP each: 3 are over the 128 MP request budget
    s = "service"
    # the service tests' bad requests first (tests/test_scale_serve.py: BAD), then more kinds
    kinds = [(what, http("POST", "/score", body, ctype), {status}, s) for what, body, ctype, status, _ in BAD]
    kinds += [
        ("truncated PNG", http("POST", "/score", truncated(encode(img, ".png"))), {400}, s),
        ("corrupt PNG CRC", http("POST", "/score", corrupt_png(img)), {400}, s),
        ("PNG claiming 0 columns", http("POST", "/score", png_header_only(0, 10)), {400}, s),
        ("JPEG claiming 20000x20000", http("POST", "/score", jpeg_claiming(20000, 20000), "image/jpeg"), {400}, s),
        ("TIFF directory after 1 MiB", http("POST", "/score", tiff_with_late_ifd(20000, 20000), "image/tiff"), {400}, s),
        ("strip 16384x4", http("POST", "/score", encode(np.full((4, 16384, 3), 90, np.uint8), ".png")), {400}, s),
        ("NUL bytes", http("POST", "/score", bytes(4096)), {400}, s),
        ("random bytes", http("POST", "/score", np.random.default_rng(2).integers(0, 256, 5000, np.uint8).tobytes()),
         {400}, s),
        ("declared length over the limit", http("POST", "/score", b"", length=max_body + 1), {413}, s),
        ("chunked body over the limit", chunked(b"\xff\xd8" + bytes(max_body)), {413}, s),
        ("Expect: 100-continue over the limit", http("POST", "/score", b"", length=max_body + 1,
                                                    extra="Expect: 100-continue\r\n"), {413, 417}, s),
        ("text/plain", http("POST", "/score", b"hello", "text/plain"), {415}, s),
        ("multipart without boundary", http("POST", "/score", b"--x\r\n\r\n", "multipart/form-data"), {400}, s),
        ("multipart without closing boundary",
         http("POST", "/score", multipart([("f", "a.png", good)], BOUNDARY)[:-(len(BOUNDARY) + 6)], MP), {400}, s),
        ("multipart part without separator", http("POST", "/score", f"--{BOUNDARY}\r\nContent-Disposition: form-data"
                                                   f"\r\n--{BOUNDARY}--\r\n".encode(), MP), {400}, s),
        ("multipart with form fields only", http("POST", "/score", multipart([("f", None, b"")], BOUNDARY), MP), {400}, s),
        ("multipart closing delimiter only", http("POST", "/score", f"--{BOUNDARY}--\r\n".encode(), MP), {400}, s),
        ("multipart boundary of 300 chars", http("POST", "/score", b"--" + b"b" * 300 + b"--\r\n",
                                                 "multipart/form-data; boundary=" + "b" * 300), {400}, s),
        ("request over the pixel budget", http("POST", "/score", multipart([("f", f"{i}.png", big) for i in range(3)],
                                                                           BOUNDARY), MP), {413}, s),
        ("Content-Length not a number", http("POST", "/score").replace(b"Content-Length: 0", b"Content-Length: 12abc"),
         {400}, "any"),
        ("GET /score", http("GET", "/score", ctype=None), {405}, s),
        ("PUT /score", http("PUT", "/score", good), {405}, s),
        ("DELETE /healthz", http("DELETE", "/healthz", ctype=None), {405}, s),
        ("POST /healthz", http("POST", "/healthz", good), {405}, s),
        ("POST /nope", http("POST", "/nope", good), {404}, s),
        ("GET /metadata/extra", http("GET", "/metadata/extra", ctype=None), {404}, s),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", {400}, "proxy"),
        # a lenient proxy may pass these on: then the service refuses the body (not an image)
        ("HTTP/1.1 without Host", http("POST", "/score", b"hello").replace(b"Host: 127.0.0.1\r\n", b""), {400}, "any"),
        ("header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", {400}, "proxy"),
        ("100 KB header", http("POST", "/score", b"hello", extra="X-Big: " + "a" * 100_000 + "\r\n"), {400, 431}, "any"),
        ("negative Content-Length", http("POST", "/score", b"", length=-5), {400}, "proxy"),
        ("Content-Length and chunked together", http("POST", "/score", b"0\r\n\r\n",
                                                     extra="Transfer-Encoding: chunked\r\n"), {400}, "any"),
        ("bad chunk size", (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked"
                            b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"), {400}, "any"),
        ("NUL in the path", b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}, "any"),
    ]
    return kinds


def send_raw(port: int, data: bytes, trickle: bool = False, timeout: float = 30) -> tuple[int | None, bytes]:
    """Send ``data`` (``trickle``: the headers, then a byte a second) and read the answer: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            if trickle:
                head, _, body = data.partition(b"\r\n\r\n")
                s.sendall(head + b"\r\n\r\n")
                s.settimeout(1.0)
                answer = b""
                for byte in body:
                    try:
                        answer = s.recv(65536)
                        if answer:
                            break
                    except TimeoutError:
                        pass
                    s.sendall(bytes([byte]))
                s.settimeout(timeout)
            else:
                s.sendall(data)
                answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, BrokenPipeError, TimeoutError) as e:
            if not answer:
                return None, type(e).__name__.encode()
    while answer.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue): the final one follows
        answer = answer.partition(b"\r\n\r\n")[2]
    if not answer.startswith(b"HTTP/"):
        return None, answer[:80]
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def http_run(good: bytes) -> dict:
    from ray import serve

    from quasar.scale import serve as service
    from quasar.scale.cluster import connect, disconnect
    from quasar.scale.http import Limits, MiB

    limits = Limits(max_body_bytes=2 * MiB, max_files=4, read_timeout_s=3.0)
    kinds = http_kinds(good, limits.max_body_bytes)
    slow = [("body sent a byte a second", http("POST", "/score", good[:200]), {408, 503}, "service"),
            ("body stalls before its end", http("POST", "/score", good[:100], length=5000), {408}, "service")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = connect(None)
    results = []
    try:
        service.start(service.build_app(None, service.ServiceOptions(limits=limits)), "127.0.0.1", port)
        deadline = time.monotonic() + 180
        while send_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)[0] != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the service did not come up within 180 s")
            time.sleep(0.5)
        for kind, data, want, who in kinds + slow:
            trickle = kind == "body sent a byte a second"
            try:
                status, body = send_raw(port, data, trickle=trickle)
            except OSError as e:
                status, body = None, str(e).encode()
            try:
                is_json = "error" in json.loads(body)
            except ValueError:
                is_json = False
            ok = status in want and (who != "service" or is_json)
            results.append({"kind": kind, "status": status, "expected": sorted(want), "answered_by": who,
                            "json_error": is_json, "pass": ok})
        health = send_raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
        status, body = send_raw(port, http("POST", "/score", good))
        scored = status == 200 and "scores" in json.loads(body)
    finally:
        try:
            serve.shutdown()
        finally:
            disconnect(started)
    return {"kinds": results, "passed": sum(r["pass"] for r in results), "total": len(results),
            "healthz_after": health, "photo_scored_after": scored, "limits": {"max_body_bytes": limits.max_body_bytes,
                                                                              "max_files": limits.max_files,
                                                                              "read_timeout_s": limits.read_timeout_s}}


# ------------------------------------------------------------------------------------------------ report


def markdown(r: dict) -> str:
    m = r["machine"]
    md = ["# Reliability figures (hostile inputs, SIGKILL then --resume, malformed HTTP)", "",
          f"{m['cpu']}, {m['cores']} cores; {r['date']}; commit {r['commit']}; the whole run {r['seconds']:.0f} s "
          f"(load average at the end {r['loadavg'][0]:.1f}). Written by benchmarks/reliability.py.", "",
          "## Hostile-input corpus", "",
          "| runtime | kinds passed | run rc | seconds | peak RSS (MB) |", "|---|---|---|---|---|"]
    for c in r["corpus"]:
        md.append(f"| {c['runtime']} | {c['passed']}/{c['total']} | {c['rc']} | {c['seconds']:.1f} | "
                  f"{c['peak_rss_mb']:.0f} |")
    if r.get("native_skipped"):
        md.append(f"| native | not yet run: {r['native_skipped']} | | | |")
    names = [c["runtime"] for c in r["corpus"]]
    md += ["", "| kind | expected | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i, k in enumerate(r["corpus"][0]["kinds"] if r["corpus"] else []):
        cells = []
        for c in r["corpus"]:
            x = c["kinds"][i]
            what = x["outcome"] or f"{x['rows']} rows"
            cells.append(("pass" if x["pass"] else "**FAIL**") + f": {what}"
                         + (f" ({x['error'][:60]})" if x["error"] else "")
                         + (f"; alone: peak RSS {x['alone_peak_rss_mb']:.0f} MB" if x.get("alone_peak_rss_mb") else ""))
        md.append(f"| {k['kind']} | {k['expect']} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    md += ["", "## SIGKILL three times, then --resume (60 photos)", "",
           "| runtime | rows on disk at each kill | final rc | rows | duplicates | missing | rows whole | pass |",
           "|---|---|---|---|---|---|---|---|"]
    for k in r["kill_resume"]:
        md.append(f"| {k['runtime']} | {', '.join(str(x['after_rows']) for x in k['kills'])} | {k['final_rc']} | "
                  f"{k['rows']}/{k['files']} | {k['duplicates']} | {k['missing']} | {k['rows_whole']} | "
                  f"{'yes' if k['pass'] else '**no**'} |")
    h = r.get("http")
    md += ["", "## Malformed HTTP requests", ""]
    if h is None:
        md.append("not yet run (--skip-http)")
    else:
        md += [f"{h['passed']}/{h['total']} kinds answered as expected; afterwards /healthz {h['healthz_after']}, "
               f"a photo scored: {h['photo_scored_after']} (limits: {h['limits']}).", "",
               "| kind | expected | answered | by | JSON error | pass |", "|---|---|---|---|---|---|"]
        for k in h["kinds"]:
            md.append(f"| {k['kind']} | {', '.join(map(str, k['expected']))} | {k['status']} | {k['answered_by']} | "
                      f"{k['json_error']} | {'yes' if k['pass'] else '**no**'} |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--native", default=str(ROOT / "build" / "native" / "quasar-score"), help="quasar-score binary")
    ap.add_argument("--native-model", default=str(ROOT / "build" / "native" / "test-data" /
                                                  "default-static-384x512.onnx"),
                    help="the model for quasar-score (native/tests/export_models.py writes it)")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is counted, not dumped
    from quasar.machine import machine_info

    py = [sys.executable, "-m", "quasar", "score"]
    clis = {"python": py}
    skipped = None
    if os.access(args.native, os.X_OK) and os.path.isfile(args.native_model):
        clis["native"] = [args.native, "--model", args.native_model]
    else:
        skipped = f"no {args.native} or no {args.native_model} (build native/, run native/tests/export_models.py)"
    result: dict = {"native_skipped": skipped}
    with tempfile.TemporaryDirectory(prefix="quasar-reliability-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        kinds = build_corpus(corpus)
        result["corpus"] = [corpus_run(name, cli, kinds, corpus, "expect" if name == "python" else "native_expect")
                            for name, cli in clis.items()]
        for c in result["corpus"]:
            print(f"corpus, {c['runtime']}: {c['passed']}/{c['total']}", flush=True)
        photos = Path(tmp) / "photos"
        photos.mkdir()
        n = 60
        for i in range(n):
            (photos / f"p{i:02d}.png").write_bytes(encode(pattern(480, 640, seed=i), ".png"))
        result["kill_resume"] = [kill_resume(name, cli, str(photos), str(Path(tmp) / f"{name}.csv"), n)
                                 for name, cli in clis.items()]
        for k in result["kill_resume"]:
            print(f"kill/resume, {k['runtime']}: {'pass' if k['pass'] else 'FAIL'} {k}", flush=True)
        if not args.skip_http:
            result["http"] = http_run(encode(pattern(120, 160), ".png"))
            print(f"http: {result['http']['passed']}/{result['http']['total']}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    result.update(machine=machine_info(), date=time.strftime("%Y-%m-%d %H:%M"), commit=commit.strip(),
                  seconds=time.perf_counter() - t0, loadavg=os.getloadavg())
    write_results(os.path.join(args.out, "reliability"), result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
