"""Foreign, newer and inconsistent models are refused by the native CLI with the Python runtime's
message: both CLIs are run on each broken model (derived here from a good static export) and their
one-line errors compared. The altered models of quasar.testing.TAMPERS (every one refused by the model
digest, quasar.model_sha256, or a bound), a model with NaN weights and a valid digest, and a FIFO named as
the model are run the same way. Also: the dynamic-size shipped model, which OpenCV DNN cannot run, is
refused by the native CLI with a line that says how to export a static graph.

    python3 native/tests/refusals.py --cli build/native/quasar-score --model M.onnx --image X.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import onnx


def metadata_variants(base, tmp: str) -> dict[str, str]:
    """name -> path of a copy of ``base`` with edited metadata."""
    out: dict[str, str] = {}

    def edited(name: str, change) -> None:
        m = onnx.ModelProto()
        m.CopyFrom(base)
        meta = {p.key: p.value for p in m.metadata_props}
        change(meta)
        del m.metadata_props[:]
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        path = os.path.join(tmp, name + ".onnx")
        onnx.save(m, path)
        out[name] = path

    def spec_edit(**kw):
        def change(meta):
            spec = json.loads(meta["quasar.preprocess"])
            spec.update(kw)
            meta["quasar.preprocess"] = json.dumps(spec, sort_keys=True)
        return change

    edited("foreign", lambda m: m.clear())
    edited("other_format", lambda m: m.update({"quasar.format": "something-else"}))
    edited("newer", lambda m: m.update({"quasar.format_version": "4"}))
    edited("version_text", lambda m: m.update({"quasar.format_version": "two"}))
    edited("missing_keys", lambda m: (m.pop("quasar.encoder"), m.pop("quasar.input_layout")))
    edited("duplicate_heads", lambda m: m.update({"quasar.heads": json.dumps(["a"] * 7)}))
    edited("heads_not_json", lambda m: m.update({"quasar.heads": "[quality"}))
    edited("bad_policy", spec_edit(policy="weird"))
    edited("fixed_keys_elsewhere", spec_edit(policy="native"))
    edited("fixed_no_fit", spec_edit(fit="squash"))
    edited("layout", lambda m: m.update({"quasar.input_layout": "NCHW_float"}))
    edited("dynamic_flag", lambda m: m.update({"quasar.dynamic_size": "maybe"}))
    edited("dynamic_but_fixed", lambda m: m.update({"quasar.dynamic_size": "true"}))
    edited("scales_count", lambda m: m.update({"quasar.logit_scales": "[1.0, 2.0]"}))
    edited("scales_edited", lambda m: m.update({"quasar.logit_scales": json.dumps(
        [s * 2 for s in json.loads(m["quasar.logit_scales"])])}))
    edited("precision_unknown", lambda m: m.update({"quasar.precision": "fp8"}))
    edited("precision_wrong", lambda m: m.update({"quasar.precision": "fp16"}))
    edited("no_head_hash", lambda m: m.pop("quasar.head_sha256"))
    edited("head_hash_edited", lambda m: m.update({"quasar.head_sha256": "sha256:" + "0" * 64}))
    edited("pack_hash", lambda m: m.update({"quasar.pack_hash": "md5:1234"}))
    edited("encoder_id", lambda m: m.update({"quasar.encoder": "has space"}))
    edited("combine", lambda m: m.update({"quasar.combine": json.dumps([["median", [0, 1]]])}))
    edited("explain_column", lambda m: m.update({"quasar.explain": json.dumps([0, 0]), "quasar.format_version": "3"}))
    edited("explain_version", lambda m: m.update({"quasar.explain": json.dumps([0])}))
    edited("spec_size", spec_edit(size=4))
    edited("wrong_hw", spec_edit(height=320))
    return out


def byte_variants(good: str, base, tmp: str) -> dict[str, str]:
    """name -> path of a broken file: not ONNX, truncated, a bad sidecar, tampered, NaN weights."""
    out: dict[str, str] = {}
    not_onnx = os.path.join(tmp, "not_onnx.onnx")
    with open(not_onnx, "wb") as f:
        f.write(b"\x00\x01 this is not a protobuf at all")
    out["not_onnx"] = not_onnx
    truncated = os.path.join(tmp, "truncated.onnx")
    with open(good, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read()[:4096])
    out["truncated"] = truncated
    corrupt = os.path.join(tmp, "sidecar.onnx")  # a model whose .sha256 sidecar does not match
    with open(good, "rb") as f, open(corrupt, "wb") as g:
        g.write(f.read())
    with open(corrupt + ".sha256", "w") as f:
        f.write("0" * 64 + "  sidecar.onnx\n")
    out["sidecar_mismatch"] = corrupt
    from quasar.testing import TAMPERS, nan_weights_model_bytes, tampered_model_bytes

    for name in TAMPERS:
        out[f"tamper_{name}"] = os.path.join(tmp, f"tamper_{name}.onnx")
        with open(out[f"tamper_{name}"], "wb") as f:
            f.write(tampered_model_bytes(name))
    out["nan_weights"] = os.path.join(tmp, "nan_weights.onnx")
    with open(out["nan_weights"], "wb") as f:
        f.write(nan_weights_model_bytes())
    # The good export with NaN in one encoder weight and a valid digest: the old native CLI scored it 0.055, rc 0
    from quasar.contract import MODEL_SHA256_KEY
    from quasar.integrity import seal_model_bytes

    m = onnx.ModelProto()
    m.CopyFrom(base)
    w = next(t for t in m.graph.initializer if not t.name.startswith("quasar.") and t.data_type == 1
             and len(t.raw_data) >= 64)
    raw = bytearray(w.raw_data)
    raw[0:4] = b"\x00\x00\xc0\x7f"  # float32 NaN
    w.raw_data = bytes(raw)
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != MODEL_SHA256_KEY]
    del m.metadata_props[:]
    for k, v in keep:
        m.metadata_props.add(key=k, value=v)
    out["nan_encoder_weights"] = os.path.join(tmp, "nan_encoder_weights.onnx")
    with open(out["nan_encoder_weights"], "wb") as f:
        f.write(seal_model_bytes(m.SerializeToString()))
    return out


def special_files(tmp: str) -> dict[str, str]:
    """A 200 MB metadata value, a FIFO, a missing file and a folder named as the model."""
    out: dict[str, str] = {}
    # A 200 MB metadata value (zeros, sparse on disk): refused from its length, before it is read
    from quasar.integrity import _varint_bytes
    from quasar.testing import tiny_model_bytes

    big = 200 << 20
    entry_head = b"\x0a\x0bquasar.note\x12" + _varint_bytes(big)
    out["metadata_200mb"] = os.path.join(tmp, "metadata_200mb.onnx")
    with open(out["metadata_200mb"], "wb") as f:
        f.write(tiny_model_bytes() + b"\x72" + _varint_bytes(len(entry_head) + big) + entry_head)
        f.truncate(f.tell() + big)
    out["fifo"] = os.path.join(tmp, "model.fifo")
    os.mkfifo(out["fifo"])
    out["missing"] = os.path.join(tmp, "nowhere.onnx")
    out["directory"] = tmp
    return out


def variants(good: str, tmp: str) -> dict[str, str]:
    """name -> path of a broken copy of ``good``."""
    base = onnx.load(good)
    return {**metadata_variants(base, tmp), **byte_variants(good, base, tmp), **special_files(tmp)}


def error_line(cmd: list[str], env: dict) -> tuple[int, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired:
        return -1, "timed out (blocked?)"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("quasar: error:")]
    return r.returncode, (lines[-1] if lines else r.stderr.strip()[-300:])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True, help="a good static export")
    ap.add_argument("--image", required=True)
    ap.add_argument("--dynamic-model", help="a dynamic-size graph (default: the shipped model)")
    args = ap.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sys.path.insert(0, root)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = variants(args.model, tmp)
        for name, path in cases.items():
            py = error_line([sys.executable, "-m", "quasar", "score", "--model", path, args.image, "-q"], env)
            nat = error_line([args.cli, "--model", path, args.image, "-q"], env)
            same = py == nat and py[0] == 2
            print(f"{'ok  ' if same else 'FAIL'} {name}: {nat[1]}")
            if not same:
                failures.append(f"{name}: Python {py} vs native {nat}")
        dynamic = args.dynamic_model or os.path.join(root, "quasar", "data", "default_quality-fp32.onnx")
        rc, line = error_line([args.cli, "--model", dynamic, args.image, "-q"], env)
        ok = rc == 2 and "--static" in line and "dynamic_size true" in line
        print(f"{'ok  ' if ok else 'FAIL'} dynamic graph (native only): {line}")
        if not ok:
            failures.append(f"dynamic graph: exit {rc}, {line}")
    print(f"refusals: {len(cases) - len([f for f in failures if not f.startswith('dynamic')])} of {len(cases)} "
          "broken models refused with the Python runtime's message")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
