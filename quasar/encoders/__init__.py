"""Frozen torch image encoders, named by id (``effnet-lite0``, ``open_clip:RN50*@openai``, ``timm:...``).

See :func:`create_encoder`; the id grammar and the built-in offline encoders are documented in
:mod:`quasar.encoders.registry`. :func:`list_encoders` and :func:`is_encoder` come from the torch-free
:mod:`quasar.encoders.names`; the torch-dependent names are imported on first use (PEP 562), so
``from quasar.encoders.names import ...`` works on an install without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from quasar.encoders.names import is_encoder, list_encoders

if TYPE_CHECKING:
    from quasar.encoders.base import Encoder
    from quasar.encoders.registry import create_encoder, list_builtin, parse_encoder_id

_LAZY = {"Encoder": "quasar.encoders.base", "create_encoder": "quasar.encoders.registry",
         "list_builtin": "quasar.encoders.registry", "parse_encoder_id": "quasar.encoders.registry"}

__all__ = ["Encoder", "create_encoder", "is_encoder", "list_builtin", "list_encoders", "parse_encoder_id"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'quasar.encoders' has no attribute {name!r}")
