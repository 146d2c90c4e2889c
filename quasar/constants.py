"""Facts the package states once: pixel normalisation, the shipped files' names, the score range.

Plain values, no imports. ``native/src/spec.hpp`` repeats the CLIP normalisation for the native library
(tests/test_native_contract.py parses the header and checks it against this module).
"""

# Per-channel pixel normalisation in 0..1 units (RGB), applied inside fused graphs.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP; the PreprocessSpec default
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision / timm ImageNet models, DINOv2
IMAGENET_STD = (0.229, 0.224, 0.225)

# Files shipped in quasar/data: the default centroid pack and the fused model exported from it.
SHIPPED_PACK = "default_quality.qpack.json"
SHIPPED_MODEL = "default_quality-fp32.onnx"
SHIPPED_PROVENANCE = "default_quality.provenance.json"  # how the shipped model was made (quasar.export.reproduce)

# Every head's score is P(good): within this range, higher is better.
SCORE_RANGE = (0.0, 1.0)
