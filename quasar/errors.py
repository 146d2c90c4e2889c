"""Errors that the CLI reports as one clear line (no traceback) with a non-zero exit."""


class QuasarError(Exception):
    """A user-facing error: bad arguments, a missing or foreign file, an incompatible model or pack."""


def one_line(text: str) -> str:
    """``text`` with line breaks written as ``\\n``/``\\r``: an error stays one line whatever a file held."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
