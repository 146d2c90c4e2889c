"""Checks of a public constructor's arguments, apart from the construction itself (as ONNX Runtime checks
its providers before it builds a session): each names the class and the argument in one line and raises
:class:`~quasar.errors.QuasarError` before anything is loaded or started. Stdlib only.

Each public constructor has one check function beside it (``check_scorer_args`` in
:mod:`quasar.runtime.scorer`, ``check_native_scorer_args`` in :mod:`quasar.nativelib`) built from these.
"""

from __future__ import annotations

from quasar.errors import QuasarError


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_at_least(owner: str, name: str, value, minimum: int, default: str | None = None) -> None:
    """``value`` is an integer >= ``minimum``, or None when ``default`` says what None means."""
    if value is None and default is not None:
        return
    if not _is_int(value) or value < minimum:
        none = f" (or None: {default})" if default is not None else ""
        raise QuasarError(f"{owner}: {name} must be an integer of at least {minimum}{none}, not {value!r}")


def one_of(owner: str, name: str, value, choices, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value not in choices:
        raise QuasarError(f"{owner}: {name} must be one of {', '.join(map(str, choices))}, not {value!r}")


def boolean(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise QuasarError(f"{owner}: {name} must be True or False, not {value!r}")


def text(owner: str, name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        raise QuasarError(f"{owner}: {name} must be a non-empty string{' or None' if allow_none else ''}, not {value!r}")
