"""How a path is written as text in result files and read back: one reversible escaping, one resume key.

On POSIX a file name is bytes. Python hands bytes that are not UTF-8 over as lone surrogates
(``os.fsdecode``'s *surrogateescape*), which no UTF-8 writer accepts, and a ``\\r`` or ``\\n`` in a
name would split a CSV row. Every text field of a result file (paths and error messages) is therefore
written in this form:

* characters of valid UTF-8 are written as they are, except that
* a backslash is written as two backslashes (``\\\\``), and
* every byte that is not valid UTF-8, and every control character (U+0000..U+001F, U+007F), is
  written ``\\xNN`` (two lower-case hex digits), so a row is always one line.

``decode_text(encode_text(p)) == p`` for every path Python can give (``os.fsdecode`` of any bytes).
In CSV files (not JSON Lines) a text cell that a spreadsheet would take for a formula (one starting
with ``=``, ``+``, ``-`` or ``@``; a tab or carriage return cannot start one, being escaped above)
gets a single quote in front, as common CSV exporters do (OWASP's "CSV injection" advice), so
``=HYPERLINK(...).jpg`` shows as text. To keep this reversible a cell that itself starts with
``'`` gets one more: :func:`csv_cell` adds one quote, :func:`csv_uncell` removes one, and
``csv_uncell(csv_cell(t)) == t`` for every text. Readers (``--resume``, ``quasar report``) strip
it back before matching paths. Number cells (scores, margins such as ``-0.25``) are left alone.

Rows are matched on ``--resume`` by :func:`resume_key`: the decoded path made absolute and
normalised (``photos/a.jpg``, ``./photos/a.jpg`` and ``/home/me/photos/a.jpg`` are one key), with
symlinks left as they are; relative paths are resolved against the current directory.
"""

from __future__ import annotations

import os
import re

_SPECIAL = re.compile("[\\\\\x00-\x1f\x7f\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    if ch == "\\":
        return "\\\\"
    o = ord(ch)
    return f"\\x{o - 0xDC00 if o >= 0xDC80 else o:02x}"


def encode_text(text: str) -> str:
    """``text`` (a path or a message) as valid, single-line UTF-8 text; reversible by :func:`decode_text`."""
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that no file name produces (not a path)
        raw = text.encode("utf-8", "surrogatepass")
    return _SPECIAL.sub(_escape, raw.decode("utf-8", "surrogateescape"))


def decode_text(text: str) -> str:
    """The path that :func:`encode_text` wrote as ``text`` (a lone backslash is taken literally)."""
    if "\\" not in text:
        return text
    parts: list[bytes] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        parts.append(text[pos : m.start()].encode("utf-8", "surrogateescape"))
        g = m.group(1)
        parts.append(b"\\" if g == "\\" else bytes([int(g[1:], 16)]))
        pos = m.end()
    parts.append(text[pos:].encode("utf-8", "surrogateescape"))
    return os.fsdecode(b"".join(parts))


CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(text: str) -> str:
    """An encoded text cell made safe for spreadsheets: a leading ``'`` before a formula character (or a ``'``)."""
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


def csv_uncell(cell: str) -> str:
    """The text :func:`csv_cell` was given (one leading ``'`` removed)."""
    return cell[1:] if cell.startswith("'") else cell


def resume_key(path: str) -> str:
    """The key a row is matched by on ``--resume``: absolute and normalised (``..`` and ``.`` folded)."""
    if path.startswith("<") and path.endswith(">"):  # "<bytes 0>", "<array 3>": not paths
        return path
    return os.path.abspath(path)
