"""A child virtual environment that sees this interpreter's packages, from a venv or a system Python.

``venv.EnvBuilder(system_site_packages=True)`` run inside a virtual environment builds the child from
the *base* interpreter, so the child sees the base's site-packages, not the venv's: inside a venv the
child lacks numpy, onnxruntime, pip and the rest. Instead the child is created bare and one ``.pth``
file lists this interpreter's package directories. Plain path lines in a ``.pth`` file are appended
to ``sys.path`` after the child's own site-packages (so a package installed into the child wins), and
the ``.pth`` files *inside* those directories are not processed (so an editable install of this
repository in the parent does not leak into the child).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

PTH_NAME = "_parent_packages.pth"


def parent_package_dirs() -> list[str]:
    """This interpreter's package directories in ``sys.path`` order: everything but the standard
    library, ``PYTHONPATH`` and the current directory (so its own site-packages, the base's with
    ``--system-site-packages``, and directories added by ``.pth`` files: the helper works nested, too)."""
    paths = sysconfig.get_paths()
    stdlib = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")}
    skip = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    seen: list[str] = []
    for p in sys.path:
        real = os.path.realpath(p) if p else ""
        if not p or not os.path.isdir(p) or real == os.getcwd() or real in skip or os.path.abspath(p) in seen:
            continue
        if any(real == s or (real.startswith(s + os.sep) and "-packages" not in real) for s in stdlib):
            continue  # the standard library (lib-dynload too); its site-packages stays
        seen.append(os.path.abspath(p))
    return seen


def child_venv(env_dir: str | os.PathLike, extra_dirs: list[str] | tuple = ()) -> str:
    """Create a bare virtual environment at ``env_dir`` whose ``sys.path`` ends with this interpreter's
    package directories (then ``extra_dirs``); returns the path of its python."""
    env_dir = Path(env_dir)
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    py = str(env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    os.makedirs(purelib, exist_ok=True)
    Path(purelib, PTH_NAME).write_text("".join(f"{d}\n" for d in [*parent_package_dirs(), *extra_dirs]))
    return py
