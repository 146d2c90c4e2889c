"""Frozen torch image encoders, named by id (``effnet-lite0``, ``open_clip:RN50*@openai``, ``timm:...``).

See :func:`create_encoder`; the id grammar and the built-in offline encoders are documented in
:mod:`quasar.encoders.registry`.
"""

from quasar.encoders.base import Encoder
from quasar.encoders.registry import create_encoder, list_builtin, parse_encoder_id

__all__ = ["Encoder", "create_encoder", "list_builtin", "parse_encoder_id"]
