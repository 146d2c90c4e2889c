"""Documented bounds on what QUASAR accepts, in one place (see docs/architecture.md, "Limits").

Plain numbers, no imports: the runtime, the pack loader and the exporter all check against these.
"""

# Centroid packs (quasar.centroids.validate)
MAX_PACK_BYTES = 64 << 20  # a pack file larger than 64 MiB is refused before it is read
MAX_LOGIT_SCALE = 1000.0  # logit scales must be finite with 0 < s <= 1000 (calibrated ones are ~10..100)

# Preprocessing specs of fused models (quasar.contract)
MIN_SPEC_SIZE = 16  # a crop size / long-side cap / short side below 16 px is not a real model input
MAX_SPEC_SIZE = 8192

# Fused model files (quasar.onnx_meta, quasar.contract; mirrored in native/src/onnx_reader.hpp)
MAX_METADATA_VALUE_BYTES = 64 << 10  # one metadata_props entry (key + value) over 64 KiB: the model is refused unread
MAX_METADATA_ENTRIES = 256  # metadata_props entries; the exporter writes 13

# Input files (quasar.io.files.read_file; mirrored in native/src/prepare.cpp). A file over INPUT_SLACK_BYTES
# is read only after its header: its stored size W x H allows at most W*H*MAX_BYTES_PER_PIXEL +
# INPUT_SLACK_BYTES bytes (16-bit RGBA uncompressed, plus metadata and previews); more (a small JPEG followed
# by 1000 MiB of anything) is refused unread. Without a size in the first INPUT_HEAD_BYTES, the file cap applies.
INPUT_HEAD_BYTES = 4 << 20
MAX_BYTES_PER_PIXEL = 8
INPUT_SLACK_BYTES = 64 << 20
