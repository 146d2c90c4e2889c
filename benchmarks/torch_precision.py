"""Where the torch backend's fp16/bf16 loses the default model's ranking, and what keeps it.

The shipped default model (``effnet-lite0+taps``) is rebuilt in torch as the torch backend does, and run on
held-out photos (preprocessed as the runtime does, batch 1) in fp32 and in reduced precision. Per variant:
per-head Spearman rank correlation (SRCC) of the margins with fp32's, the largest |Δ score| and |Δ margin|,
and per embedding block (input statistics, each tapped stage's mean and std) the relative error of the block
and its share of the margin error (``|W_block · Δe_block| / |e|``, the largest over heads and photos).

Variants: ``all``: the whole encoder in the low precision (what the torch backend runs); ``+fp32 <parts>``:
those parts kept in float32 (``input``: the 0..255 -> mean/std normalisation and the input statistics, so
the stem sees fp32 pixels only if the stem is fp32 too; ``stem``: ``conv_stem`` and ``bn1``); ``only <part>``:
everything fp32 except that part (which part's rounding matters); ``weights rounded only`` / ``activations
rounded only``: fp32 arithmetic with only the backbone's weights (and batch-norm buffers), or only the outputs
of its convolutions and batch norms, rounded to the low precision. Margins of combine heads are logits
(scaled). ``max_d_over_min_gap``: largest |Δ margin| over the closest pair of photos' fp32 margin gap.

CPU only (no GPU here): it measures accuracy, not speed; GPU speed is ``benchmarks/gpu_check.py``'s, not yet run.

Run: ``python benchmarks/torch_precision.py --photos 16 --sensitivity`` (the committed results); writes
``benchmarks/results/torch_precision.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from quasar_bench.lscpu import isa_summary, lscpu
from quasar_bench.results import write_results

from quasar.eval.metrics import srcc
from quasar.photos import fetch_photos
from quasar.runtime import Scorer
from quasar.runtime.backends.torch_backend import TorchBackend, read_head_initializers
from quasar.runtime.prepare import Preparer
from quasar.runtime.sources import Item
from quasar.shipped import shipped_model_path

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PARTS = ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "head"]
PART_MODULES = {"stem": ["conv_stem", "bn1"], "head": ["conv_head", "bn2"]}


def part_modules(bb, part: str) -> list[torch.nn.Module]:
    mods = dict(bb.named_modules())
    return [mods[n] for n in PART_MODULES.get(part, [part])]


def cast_input(module, args):
    p = next(module.parameters())
    return tuple(a.to(p.dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def mixed(info, dtype, fp32_parts):
    """The backend's fp32 fused module with the encoder in ``dtype`` except ``fp32_parts``."""
    m = TorchBackend(info, device="cpu").module
    m.encoder.to(dtype)
    if "input" in fp32_parts:  # the 0..255 -> mean/std normalisation and the input statistics' buffers
        for owner, names in ((m.encoder, ("mean", "inv_std")), (m.encoder.backbone, ("pix_mean", "pix_std"))):
            for n in names:
                setattr(owner, n, getattr(owner, n).float())
    bb = m.encoder.backbone.backbone
    for part in PARTS:
        for mod in part_modules(bb, part):
            if part in fp32_parts:
                mod.float()
            mod.register_forward_pre_hook(cast_input)
    return m


def rounded(info, dtype, what):
    """The fp32 module computing in fp32 with only its backbone's weights (``what="weights"``) or only the
    outputs of its convolutions and batch norms (``"activations"``) rounded to ``dtype``."""
    m = TorchBackend(info, device="cpu").module
    bb = m.encoder.backbone.backbone
    if what == "weights":
        with torch.no_grad():
            for t in [*bb.parameters(), *(b for b in bb.buffers() if b.is_floating_point())]:
                t.copy_(t.to(dtype).float())
        return m
    for mod in bb.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            mod.register_forward_hook(lambda _m, _a, out: out.to(dtype).float())
    return m


def run(module, arrays):
    """(margins [N, K], raw embeddings [N, D]) float64, batch 1."""
    margins, embs = [], []
    with torch.inference_mode():
        for a in arrays:
            x = torch.from_numpy(a[None])
            e = module.encoder(x).float()
            margins.append(module.head(torch.nn.functional.normalize(e, dim=-1))[1][0].double().numpy())
            embs.append(e[0].double().numpy())
    return np.stack(margins), np.stack(embs)


def compare(ref, got, weights, layout, heads):
    (m0, e0), (m1, e1) = ref, got
    per_head = {h: float(srcc(m1[:, k], m0[:, k])) for k, h in enumerate(heads)}
    gaps = np.diff(np.sort(m0, axis=0), axis=0).min(axis=0)  # the closest pair of photos, per head
    err_over_gap = {h: float(np.abs(m1[:, k] - m0[:, k]).max() / max(gaps[k], 1e-12)) for k, h in enumerate(heads)}
    norm = np.linalg.norm(e0, axis=1, keepdims=True)
    blocks = {}
    for name, a, b in layout:
        d = (e1[:, a:b] - e0[:, a:b]) / norm
        rel = np.linalg.norm(e1[:, a:b] - e0[:, a:b], axis=1) / np.maximum(np.linalg.norm(e0[:, a:b], axis=1), 1e-30)
        blocks[name] = {"rel_err": float(np.median(rel)),
                        "margin_err": float(np.abs(d @ weights[:, a:b].T).max())}
    spread = float(np.median(m0.std(axis=0)))
    return {"worst_srcc": min(per_head.values()), "worst_head": min(per_head, key=per_head.get),
            "srcc": per_head, "min_gap": dict(zip(heads, map(float, gaps), strict=True)),
            "max_d_over_min_gap": err_over_gap, "max_d_margin": float(np.abs(m1 - m0).max()), "margin_spread": spread,
            "blocks": blocks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=24)
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], choices=list(DTYPES))
    ap.add_argument("--sensitivity", action="store_true", help="also run 'only <part>' variants")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "torch_precision"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = shipped_model_path()
    with Scorer(model) as s:
        info = s.info
    heads = list(info.heads)
    photos = sorted((p for p in fetch_photos() if p.split == "heldout"), key=lambda p: p.name)[: args.photos]
    prep = Preparer(info.spec)
    arrays = [prep(Item(p.path, path=p.path)) for p in photos]
    base = TorchBackend(info, device="cpu").module
    base.encoder(torch.from_numpy(arrays[0][None]))
    layout = base.encoder.backbone.layout
    weights, _, _ = read_head_initializers(model, info.num_heads, [(r, list(i)) for r, i in info.combine])
    combine_w = np.zeros((len(heads), weights.shape[1]))
    combine_w[: weights.shape[0]] = weights  # combine heads: not linear in e; their rows stay 0 in the shares
    t0 = time.perf_counter()
    ref = run(base, arrays)
    variants = {}
    for prec in args.precisions:
        dtype = DTYPES[prec]
        todo = {"all": []} if prec == "fp16" else {
            "all": [], "only input": [*PARTS], "+fp32 input": ["input"],
            "+fp32 input, stem, blocks.0-1": ["input", "stem", "blocks.0", "blocks.1"]}
        for what in ("weights", "activations"):
            variants[f"{prec} {what} rounded only"] = compare(ref, run(rounded(info, dtype, what), arrays), combine_w,
                                                              layout, heads)
        if args.sensitivity:  # everything fp32 but one part
            todo.update({f"only {p}": ["input", *(q for q in PARTS if q != p)] for p in PARTS})
        for name, parts in todo.items():
            variants[f"{prec} {name}"] = compare(ref, run(mixed(info, dtype, parts), arrays), combine_w, layout,
                                                 heads)
            print(f"{prec} {name}: worst SRCC {variants[f'{prec} {name}']['worst_srcc']:.4f}", file=sys.stderr)
    cpu = lscpu()
    data = {"photos": len(arrays), "split": "heldout", "model": Path(model).name, "encoder": info.encoder,
            "torch": torch.__version__, "machine": {"cpu": cpu.get("model_name"), "flags": isa_summary(cpu.get("flags", []))},
            "device": "cpu", "seconds": round(time.perf_counter() - t0, 1), "variants": variants}
    md = [f"# torch backend precision: fp16/bf16 vs fp32 ({len(arrays)} held-out photos, CPU)", "",
          f"Shipped model `{Path(model).name}` ({info.encoder}), batch 1, torch {torch.__version__} on "
          f"{data['machine']['cpu']} ({data['machine']['flags']}). Accuracy only: GPU speed not measured here.", "",
          "| variant | worst-head SRCC | worst head | quality SRCC | max abs d margin |", "|---|---|---|---|---|"]
    for name, v in variants.items():
        md.append(f"| {name} | {v['worst_srcc']:.4f} | {v['worst_head']} | {v['srcc']['quality']:.4f} | "
                  f"{v['max_d_margin']:.2e} |")
    md += ["", f"Median over heads of the margins' spread between photos (std, fp32): "
           f"{next(iter(variants.values()))['margin_spread']:.4f}.", "",
           "Per embedding block, `all` variants: median relative error of the block / largest margin error it causes",
           "", "| block | " + " | ".join(n for n in variants if n.endswith(" all")) + " |",
           "|---|" + "---|" * sum(n.endswith(" all") for n in variants)]
    for name, _, _ in layout:
        md.append(f"| {name} | " + " | ".join(f"{v['blocks'][name]['rel_err']:.1e} / {v['blocks'][name]['margin_err']:.1e}"
                                             for n, v in variants.items() if n.endswith(" all")) + " |")
    write_results(args.out, data, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
