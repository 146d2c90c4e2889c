"""The default model shipped in the package (``quasar/data``), if it matches the shipped pack."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from quasar.constants import SHIPPED_MODEL, SHIPPED_PACK
from quasar.onnx_meta import (
    NotOnnx,
)

if TYPE_CHECKING:
    pass




def shipped_model_path(pack_hash: str | None = None) -> str | None:
    """The default model shipped in the package, if it is there and was exported from the shipped
    pack (same content hash; or from ``pack_hash`` when given); else None (a development tree whose
    pack was rebuilt, say). The runtime still validates the file fully when it loads it."""
    from importlib import resources

    from quasar.onnx_meta import read_metadata_props

    data = resources.files("quasar") / "data"
    model, pack = data / SHIPPED_MODEL, data / SHIPPED_PACK
    if not (model.is_file() and pack.is_file()):
        return None
    try:
        pack_hash = pack_hash or json.loads(pack.read_text()).get("content_hash")
        meta = read_metadata_props(str(model))
    except (NotOnnx, OSError, ValueError):
        return None
    return str(model) if pack_hash and meta.get("quasar.pack_hash") == pack_hash else None
