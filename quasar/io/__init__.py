"""Image I/O below preprocessing: header probing and formats, EXIF orientation, decoding, files.

Used by the runtime, the anchors (centroid building) and int8 calibration alike, so every stage
sees the same pixels. numpy and OpenCV only (Pillow as an optional fallback for headers and GIFs).
"""

from quasar.io.decode import DEFAULT_MAX_PIXELS, Decoded, ImageError, decode, from_array
from quasar.io.files import IMAGE_EXTENSIONS, read_file, read_rgb
from quasar.io.formats import probe

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "Decoded", "ImageError", "decode", "from_array", "probe",
           "read_file", "read_rgb"]
