"""``quasar`` command line: one sub-command group per pipeline stage or application command.

Each stage's CLI module and each command of :mod:`quasar.app` registers its own commands
(``register(subparsers)``) so this file only dispatches. Stages that need torch import it lazily, so ``quasar score`` runs without torch.
User errors (:class:`~quasar.errors.QuasarError`, missing files, a full disk) print one line and exit
2. A closed output pipe (``quasar ... | head``) ends quietly with status 141 (128 + SIGPIPE), what a
shell reports for Unix tools that stop on a closed pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings

from quasar import __version__
from quasar.errors import QuasarError, one_line
from quasar.helpfmt import apply_formatter

# (module, attribute) pairs; each exposes register(subparsers).
STAGES = (
    "quasar.centroids.cli",
    "quasar.export.cli",
    "quasar.app.score",  # `quasar score`: the runtime, with --report and --ray composed in
    "quasar.app.serve",  # `quasar serve`: imports Ray only when run
    "quasar.eval.cli",
    "quasar.app.report",  # `quasar report`: runtime only, imports its modules when run
    "quasar.app.cull",  # `quasar cull`: likewise
    "quasar.app.listing",  # `quasar list`: torch-free, imports its readers only when run
    "quasar.app.bench",  # thin: the benchmark code is imported only when `quasar bench` runs
    "quasar.app.perf",  # thin: LoadGen, matplotlib and the runtime are imported only when `quasar perf` runs
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quasar", description="QUASAR engine: image quality and aesthetics scores.")
    parser.add_argument("--version", action="version", version=f"quasar-engine {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for modname in STAGES:
        importlib.import_module(modname).register(sub)
    apply_formatter(parser)  # every command's --help shows its defaults
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with quiet_stderr(getattr(args, "quiet", False)):
            rc = args.func(args)
    except QuasarError as e:
        print(f"quasar: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # a missing or unwritable file, a full disk: one line, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"quasar: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quasar: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


EXIT_BROKEN_PIPE = 141


@contextlib.contextmanager
def quiet_stderr(quiet: bool):
    """``-q``: Python warnings (numpy's RuntimeWarnings...) are ignored, and what C libraries write to
    file descriptor 2 themselves (libpng's "libpng warning: ...") goes to /dev/null; ``sys.stderr``
    keeps the real stderr, so the one-line error of a failed run is still shown."""
    if not quiet:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            redirect = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # captured (tests): nothing native to silence
            redirect = False
        if not redirect:
            yield
            return
        old = sys.stderr
        old.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=old.encoding, errors=old.errors)
        try:
            yield
        finally:
            try:
                sys.stderr.close()
            except OSError:
                pass
            sys.stderr = old
            os.dup2(saved, 2)
            os.close(saved)


def _detach_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not raise again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both an OSError and a ValueError
        pass  # stdout is not a real file (captured in tests): nothing will be flushed to a pipe


if __name__ == "__main__":
    sys.exit(main())
