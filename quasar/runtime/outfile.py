"""Every file a command writes (results, reports, placed rows): checked first, locked, replaced whole.

One home for how QUASAR writes a user's files, used by ``quasar score`` (``-o``, ``--report``,
``OUT.embeddings.npy``), ``quasar report -o`` and ``quasar cull`` (``-o``, ``--report``):

* :func:`check_output` runs before any work (before the model loads) and refuses, in one line, an
  output that is one of the inputs (the same file, however spelled: a symlink or a hard link to it
  counts), an output named like an image (``.jpg``, ``.png``... of
  :data:`quasar.io.files.IMAGE_EXTENSIONS`: results never go into a photo's name, so a slip of the
  fingers such as ``-o b.jpg`` cannot replace a photo), a folder, and, for reports, a name not
  ending ``.html`` / ``.htm``. Files found inside an input folder are never at risk: only files
  with an image extension are read from folders, and no output may have one.
* :class:`AtomicFile` writes beside the output under a temporary name (``.OUT.<pid>-<random>.tmp``
  in the same folder, so the rename cannot cross file systems) and renames it over ``OUT`` with
  :func:`os.replace` when done; a failure removes the temporary file and leaves ``OUT`` as it was,
  so no command leaves a 0-byte or half-written file in place of a good one. An ``OUT`` that is a
  symlink keeps pointing where it did: the file it points to is replaced. An existing ``OUT``'s
  permission bits are kept. Side files (a report's thumbnails in ``REPORT_files/``) go through
  :func:`write_file`: never over an input (by identity, links followed), a symlink in their place
  replaced rather than followed.
* :class:`OutputLock` holds an exclusive :func:`fcntl.flock` on ``.OUT.lock`` beside the output
  (holding the owner's PID) while a command writes it, so two runs on one output (two ``--resume``
  runs, say) cannot interleave rows: the second ends at once with one line naming the first one's
  PID. The lock is released by the kernel when a run dies, so a stale ``.lock`` file never blocks.

``--resume`` and the temporary file: a resumed results file is appended to *in place* (under the
lock), because that is what makes resuming work: each row is on disk as soon as it is scored, so a
run killed at any moment (even SIGKILL) keeps its rows. Appending never rewrites a row already
there; the only change to existing bytes is :func:`quasar.runtime.output.repair_tail` cutting a
damaged tail. Without ``--resume`` the rows go to the temporary file, renamed over ``OUT`` when
the run ends (also after Ctrl-C or a per-run error, the rows written being valid), so an existing
``OUT`` is only ever replaced by a complete file; a run killed with SIGKILL leaves ``OUT`` as it
was (and a ``.OUT.*.tmp`` file to delete). Use ``--resume`` from the first run for a long job that
may be killed.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
from collections.abc import Iterable

from quasar.errors import QuasarError
from quasar.io.files import IMAGE_EXTENSIONS

REPORT_SUFFIXES = (".html", ".htm")


def _shown(path: str) -> str:
    from quasar.runtime.pathtext import encode_text

    return encode_text(path)


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one file (:func:`os.path.samefile` when both exist, else the resolved paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(out: str, inputs: Iterable[str] = (), *, what: str = "output", report: bool = False) -> None:
    """Refuse, before anything is written, an output that could destroy a user's file (see the module doc).

    ``out`` ``-`` (stdout) or None is always fine. ``inputs``: the paths the command reads (files or folders).
    """
    if out is None or out == "-":
        return
    ext = os.path.splitext(out)[1].lower()
    if report and ext not in REPORT_SUFFIXES:
        raise QuasarError(f"{_shown(out)}: a report is written as .html; refusing to write it under another name")
    if ext in IMAGE_EXTENSIONS:
        raise QuasarError(f"{_shown(out)}: the {what} has an image file extension ({ext}); refusing to write "
                          "over what may be a photo (name it .csv, .jsonl or .html)")
    if os.path.isdir(out):
        raise QuasarError(f"{_shown(out)}: is a directory; give a file name for the {what}")
    for p in inputs:
        if p is not None and p != "-" and same_file(out, p):
            raise QuasarError(f"{_shown(out)}: the {what} is also an input ({_shown(p)}); refusing to write over it")


class AtomicFile:
    """A file written under a temporary name beside ``out``, renamed over it by :meth:`commit`."""

    def __init__(self, out: str, binary: bool = False, what: str = "output", follow_links: bool = True) -> None:
        self.out, self.what = out, what
        # a symlinked OUT: replace the file it points to and keep the link, or (follow_links False) the link itself
        self.target = os.path.realpath(out) if follow_links else os.path.abspath(out)
        self.follow_links = follow_links
        folder, base = os.path.split(self.target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            while True:
                self.tmp = os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
                try:
                    fd = os.open(self.tmp, flags, 0o666)
                    break
                except FileExistsError:
                    continue
        except OSError as e:
            raise QuasarError(f"{_shown(out)}: cannot write the {what}: {e.strerror or e}") from None
        self.stream = (os.fdopen(fd, "wb") if binary else
                       os.fdopen(fd, "w", encoding="utf-8", newline=""))
        self.closed = False

    def commit(self) -> None:
        """Close and rename over ``out`` (QuasarError naming ``out`` if that fails; ``out`` is then unchanged)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.stream.close()
            try:
                st = os.stat(self.target, follow_symlinks=self.follow_links)
                mode = None if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)
            except OSError:
                mode = None
            if mode is not None:
                os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.target)
        except OSError as e:
            self._unlink()
            raise QuasarError(f"{_shown(self.out)}: cannot write the {self.what}: {e.strerror or e}") from None

    def discard(self) -> None:
        """Close and remove the temporary file; ``out`` stays as it was."""
        if self.closed:
            return
        self.closed = True
        try:
            self.stream.close()
        except OSError:
            pass
        self._unlink()

    def _unlink(self) -> None:
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def lock_path(out: str) -> str:
    folder, base = os.path.split(os.path.realpath(out))
    return os.path.join(folder, f".{base}.lock")


class OutputLock:
    """An exclusive lock on ``out`` for one run (see the module doc); a context manager."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.path = lock_path(out)
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        while True:
            try:
                fd = os.open(self.path, flags, 0o666)
            except OSError as e:
                raise QuasarError(f"{_shown(self.out)}: cannot lock the output ({_shown(self.path)}): "
                                  f"{e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                raise QuasarError(f"{_shown(self.out)}: in use by another quasar run (PID {pid}); wait for it to "
                                  "end or write to another file") from None
            try:  # the holder may have removed the file between our open and flock: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def is_device(out: str) -> bool:
    """Whether ``out`` exists and is not a regular file or a folder (``/dev/null``, a FIFO, a terminal):
    a stream, written directly, without a lock or a temporary file (there is no file to protect)."""
    try:
        st = os.stat(out)
    except OSError:
        return False
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


class Output:
    """An output being written: ``stream``; :meth:`commit` (or :meth:`discard`) ends it and releases the lock.

    A regular file is locked (:class:`OutputLock`; pass ``lock`` when already held) and written through an
    :class:`AtomicFile`, or with ``append`` appended in place; a device (:func:`is_device`) is written directly.
    """

    def __init__(self, out: str, *, what: str = "output", binary: bool = False, append: bool = False,
                 lock: OutputLock | None = None) -> None:
        self.out, self.what = out, what
        self.lock = lock
        self.atomic: AtomicFile | None = None
        device = is_device(out)
        if self.lock is None and not device:
            self.lock = OutputLock(out).acquire()
        try:
            if device or append:
                mode = ("a" if append else "w") + ("b" if binary else "")
                try:
                    self.stream = (open(out, mode) if binary else
                                   open(out, mode, encoding="utf-8", newline=""))
                except OSError as e:
                    raise QuasarError(f"{_shown(out)}: cannot write the {what}: {e.strerror or e}") from None
            else:
                self.atomic = AtomicFile(out, binary=binary, what=what)
                self.stream = self.atomic.stream
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        try:
            if self.atomic is not None:
                self.atomic.commit()
            else:
                try:
                    self.stream.close()
                except OSError as e:
                    raise QuasarError(f"{_shown(self.out)}: cannot write the {self.what}: {e.strerror or e}") from None
        finally:
            self._release()

    def discard(self) -> None:
        try:
            if self.atomic is not None:
                self.atomic.discard()
            else:
                try:
                    self.stream.close()
                except OSError:
                    pass
        finally:
            self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def file_ids(paths: Iterable[str | None]) -> frozenset[tuple[int, int]]:
    """The identities (device, inode) of the files among ``paths`` that exist: what :func:`write_file` protects."""
    ids = set()
    for p in paths:
        if p is None:
            continue
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        ids.add((st.st_dev, st.st_ino))
    return frozenset(ids)


def check_not_input(out: str, protect: frozenset[tuple[int, int]], what: str = "output") -> None:
    """QuasarError when ``out`` exists and is (or links to) one of the ``protect`` files (:func:`file_ids`)."""
    try:
        st = os.stat(out)
    except (OSError, ValueError):
        return
    if (st.st_dev, st.st_ino) in protect:
        raise QuasarError(f"{_shown(out)}: the {what} would be written over an input; refusing (move the input "
                          "or write the output elsewhere)")


def write_file(out: str, content: bytes, *, what: str = "output",
               protect: frozenset[tuple[int, int]] = frozenset()) -> None:
    """Write a side file a command makes beside its main output (a report's thumbnails) in one go:
    refused when ``out`` is one of the ``protect`` files (an input: :func:`check_not_input`), written
    through an :class:`AtomicFile` (a failure leaves no partial file, and ``out`` as it was) that
    replaces a symlink at ``out`` rather than the file it points to. Not locked: its folder is the
    command's own, and the main output's lock covers the run."""
    check_not_input(out, protect, what)
    _write_and_commit(AtomicFile(out, binary=True, what=what, follow_links=False), out, content, what)


def write_whole(out: str, content: str | bytes, what: str = "output") -> None:
    """Write ``content`` to ``out`` in one go: locked, through an :class:`AtomicFile` (see :class:`Output`)."""
    _write_and_commit(Output(out, what=what, binary=isinstance(content, bytes)), out, content, what)


def _write_and_commit(target: AtomicFile | Output, out: str, content: str | bytes, what: str) -> None:
    """Write ``content`` through ``target`` and commit it; on any failure discard it (``out`` stays as it
    was) and raise one line naming ``out``."""
    try:
        target.stream.write(content)
        target.stream.flush()
    except (OSError, ValueError) as e:  # ValueError: UnicodeEncodeError
        target.discard()
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise QuasarError(f"{_shown(out)}: cannot write the {what}: {reason}") from None
    except BaseException:
        target.discard()
        raise
    target.commit()
