"""Errors that the CLI reports as one clear line (no traceback) with a non-zero exit."""


class QuasarError(Exception):
    """A user-facing error: bad arguments, a missing or foreign file, an incompatible model or pack."""
