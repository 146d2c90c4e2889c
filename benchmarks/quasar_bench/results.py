"""The one results writer of the benchmark scripts: ``BASE.json`` and ``BASE.md`` side by side.

``BASE`` is the results path without its suffix (``benchmarks/results/serve_slow``, or ``--out``'s folder
joined with the script's name); its folder is made. The JSON is indented by one space and ends with a
newline (``benchmarks/doc_numbers.py`` reads these files by key path, so their structure is the
script's ``data`` as given); the Markdown is printed too unless ``show`` is false.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path


def write_results(base: str | os.PathLike, data, markdown: str | Iterable[str], *, show: bool = True,
                  default: Callable | None = None) -> tuple[Path, Path]:
    """Write ``base``.json (``data``; ``default`` as for :func:`json.dumps`) and ``base``.md (``markdown``:
    text, or lines joined with newlines); print the Markdown when ``show``. Returns both paths."""
    text = markdown if isinstance(markdown, str) else "\n".join(markdown)
    text = text.rstrip("\n") + "\n"
    json_path, md_path = Path(f"{os.fspath(base)}.json"), Path(f"{os.fspath(base)}.md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, default=default) + "\n")
    md_path.write_text(text)
    if show:
        print(text, end="")
    return json_path, md_path
