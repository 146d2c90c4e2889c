"""The native CLI's behaviour beyond scores, side by side with `python3 -m quasar score`: --resume after
a crash (half-written last line, NUL-filled tail), refused resumes (other columns), stdout output,
per-path error rows (missing file, empty folder), the summary, and the exit status (0, 1, --strict).

    python3 native/tests/cli_test.py --cli build/native/quasar-score --model M.onnx --images DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures: list[str] = []


def check(cond: bool, what: str) -> None:
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


class Clis:
    """Both CLIs, run on the same arguments in the same folder."""

    def __init__(self, cli: str, model: str, tmp: str) -> None:
        self.env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.py = [sys.executable, "-m", "quasar", "score"]
        self.nat = [cli]
        self.m = ["--model", model]
        self.tmp = tmp

    def both(self, argv: list[str]) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        a = subprocess.run(self.py + argv, capture_output=True, text=True, env=self.env, cwd=self.tmp)
        b = subprocess.run(self.nat + argv, capture_output=True, text=True, env=self.env, cwd=self.tmp)
        return a, b

    def tools(self):
        return (("python", self.py), ("native", self.nat))


def check_rows_and_exit(c: Clis) -> None:
    """Relative paths, a missing file and an empty folder: the same rows (paths and errors) in order."""
    m = c.m
    a, b = c.both(["imgs", "missing.png", "empty", *m, "-q"])
    rows_a = [r.split(",")[0] + "|" + r.split(",")[-1] for r in a.stdout.splitlines()]
    rows_b = [r.split(",")[0] + "|" + r.split(",")[-1] for r in b.stdout.splitlines()]
    check(a.returncode == b.returncode == 0, f"exit 0 when something was scored ({a.returncode}, {b.returncode})")
    check(rows_a == rows_b and len(rows_b) == 8, "stdout CSV: same paths and error cells, in order")
    check("missing.png|file not found" in rows_b, "a missing file is an error row")
    check("empty|is a directory with no image files in it; use -r (recursive=True) to include sub-folders" in rows_b,
          "an empty folder is an error row")
    a, b = c.both(["missing.png", *m, "--strict"])
    check(a.returncode == b.returncode == 1, f"exit 1 when nothing was scored ({a.returncode}, {b.returncode})")
    sa, sb = a.stderr.splitlines(), b.stderr.splitlines()
    check(sa[-1] == sb[-1] == "  missing.png: file not found" and sa[-2].split(" (")[0] == sb[-2].split(" (")[0]
          == "quasar score: 0 of 1 scored, 1 failed", f"the summary lists the failure ({sb[-2:]})")
    a, b = c.both(["imgs", "missing.png", *m, "--strict", "-q"])
    check(a.returncode == b.returncode == 1, "--strict: exit 1 when any input failed")


def check_resume(c: Clis) -> None:
    """--resume after a crash: the last line half written and a NUL-filled tail; then every path once;
    refused resumes; JSON Lines to stdout."""
    m, tmp, env = c.m, c.tmp, c.env
    for tool, cmd in c.tools():
        out = os.path.join(tmp, f"{tool}.csv")
        subprocess.run(cmd + ["imgs", *m, "-o", out, "-q"], env=env, cwd=tmp, check=True)
        with open(out, "rb") as f:
            data = f.read()
        cut = data[: data.rfind(b"\n", 0, len(data) - 1) - 7]  # the last two rows lost, one half written
        with open(out, "wb") as f:
            f.write(cut + b"\0" * 100)
        r = subprocess.run(cmd + ["imgs", *m, "-o", out, "--resume"], capture_output=True, text=True, env=env, cwd=tmp)
        notes = [ln.replace(out, "OUT") for ln in r.stderr.splitlines() if ln.startswith("quasar score: ") and "cut" in ln]
        with open(out, encoding="utf-8") as f:
            paths = [ln.split(",")[0] for ln in f.read().splitlines()[1:]]
        summary = [ln for ln in r.stderr.splitlines() if " scored, " in ln]
        check(r.returncode == 0 and sorted(paths) == sorted(set(paths)) and len(paths) == 5,
              f"{tool}: --resume completes a damaged file with every path once ({paths})")
        if tool == "python":
            py_notes, py_summary = notes, summary[0].split(" (")[0] if summary else ""
        else:
            check(notes == py_notes and len(notes) >= 1, f"the same repair notes ({notes} vs {py_notes})")
            check((summary[0].split(" (")[0] if summary else "") == py_summary,
                  f"the same summary ({summary} vs {py_summary})")
    # Resuming into a file with other columns is refused with the same line.
    a, b = c.both(["imgs", *m, "-o", "native.csv", "--resume", "--margins"])
    check(a.returncode == b.returncode == 2 and a.stderr.strip() == b.stderr.strip().replace("native.csv", "native.csv"),
          f"other columns: refused the same way ({b.stderr.strip()[:120]})")
    a, b = c.both(["imgs", *m, "--resume"])
    check(a.returncode == b.returncode == 2 and a.stderr.strip() == b.stderr.strip(), "--resume needs a file")
    # JSON Lines to stdout: the same keys and nulls for a failed row.
    a, b = c.both(["missing.png", *m, "--format", "jsonl", "-q"])
    check(a.stdout.replace(" ", "") == b.stdout.replace(" ", "") and b.stdout.startswith('{"path": "missing.png", "quality": null'),
          f"JSON Lines error row ({b.stdout.strip()[:100]})")


def check_outputs(c: Clis, photo: str) -> None:
    """Issue 21: an output that is an input (the same file, not just spelling) or has an image extension is
    refused before anything is written, by both CLIs, with the same line; formula-like names get a leading '
    in CSV, the same in both CLIs, and --resume still matches them."""
    m, tmp = c.m, c.tmp
    before = open(os.path.join(tmp, photo), "rb").read()
    os.link(os.path.join(tmp, photo), os.path.join(tmp, "alias.csv"))
    for out in (photo, "./" + photo, "alias.csv", "new.png"):
        a, b = c.both([photo, *m, "-o", out, "-q"])
        check(a.returncode == b.returncode == 2 and "refusing" in b.stderr and len(b.stderr.splitlines()) == 1
              and a.stderr.strip() == b.stderr.strip().replace("quasar-score:", "quasar:"),
              f"-o {out}: refused, one line, like Python ({b.stderr.strip()})")
        check(open(os.path.join(tmp, photo), "rb").read() == before and not os.path.exists(os.path.join(tmp, "new.png")),
              f"-o {out}: the photo is untouched")
    for name in ("=SUM(1).png", "-x.png", "@y.png"):
        shutil.copy(os.path.join(tmp, photo), os.path.join(tmp, name))
    for tool, cmd in c.tools():
        out = f"{tool}-f.csv"
        subprocess.run(cmd + [*m, "-o", out, "-q", "--", "=SUM(1).png", "-x.png"], env=c.env, cwd=tmp, check=True)
        r = subprocess.run(cmd + [*m, "-o", out, "--resume", "-q", "--", "=SUM(1).png", "-x.png", "@y.png"],
                           env=c.env, cwd=tmp, capture_output=True, text=True)
        paths = [line.split(",")[0] for line in open(os.path.join(tmp, out)).read().splitlines()[1:]]
        check(r.returncode == 0 and paths == ["'=SUM(1).png", "'-x.png", "'@y.png"],
              f"{tool}: formula cells neutralised and resumed once each ({paths})")


def check_lock_and_walk(c: Clis, photo: str) -> None:
    """A second run on an output whose lock is held names the holder, no temporary file is left behind;
    -r follows a symlinked folder only inside the scanned folder: a link to / is not walked."""
    import fcntl

    m, tmp = c.m, c.tmp
    lock = os.path.join(tmp, ".locked.csv.lock")
    with open(lock, "w") as f:
        f.write("4242\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        a, b = c.both([photo, *m, "-o", "locked.csv", "--resume", "-q"])
    check(a.returncode == b.returncode == 2 and "PID 4242" in a.stderr and "PID 4242" in b.stderr,
          f"a held lock: one line naming its PID ({b.stderr.strip()})")
    check(not [n for n in os.listdir(tmp) if n.endswith(".tmp")], "no temporary file left behind")
    os.makedirs(os.path.join(tmp, "walk", "sub"))
    shutil.copy(os.path.join(tmp, photo), os.path.join(tmp, "walk", "sub", "a.png"))
    os.symlink("/", os.path.join(tmp, "walk", "rootfs"))
    os.symlink("sub", os.path.join(tmp, "walk", "again"))
    a, b = c.both(["walk", "-r", *m, "-q"])
    rows = [line.split(",")[0] for line in b.stdout.splitlines()[1:]]
    check(a.returncode == b.returncode == 0 and a.stdout == b.stdout and rows == ["walk/again/a.png"],
          f"-r: a link to / is not followed, a link inside is, once ({rows})")


def check_long_tail(c: Clis) -> None:
    """A small JPEG followed by a tail past the slack (sparse zeros): refused from its header, unread,
    with the same error cell in both CLIs (issue 21 item 10: both read it whole and scored it)."""
    import cv2
    import numpy as np

    sys.path.insert(0, ROOT)
    from quasar.limits import INPUT_SLACK_BYTES

    with open(os.path.join(c.tmp, "tail.jpg"), "wb") as f:
        f.write(cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
        f.truncate(INPUT_SLACK_BYTES + (2 << 20))
    a, b = c.both(["tail.jpg", *c.m, "-q"])
    cell_a, cell_b = a.stdout.strip().splitlines()[-1], b.stdout.strip().splitlines()[-1]
    check(a.returncode == b.returncode == 1 and cell_a == cell_b and "more than a 64x64 image can take" in cell_b,
          f"a JPEG with a long tail is refused unread by both ({a.returncode} {cell_a!r}; {b.returncode} {cell_b!r})")
    # ... and unread means no buffer of the file's size either: the native CLI's peak RSS on the same
    # JPEG with a 1 GiB tail stays within 256 MB of its peak on the JPEG alone (before: +1 GiB, the
    # whole file's buffer zero-filled before the header was checked)
    with open(os.path.join(c.tmp, "small.jpg"), "wb") as f:
        f.write(cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
    os.truncate(os.path.join(c.tmp, "tail.jpg"), 1 << 30)

    def peak_mb(name: str) -> float:
        with open(os.devnull, "w") as null:
            proc = subprocess.Popen(c.nat + [name, *c.m, "-q"], cwd=c.tmp, stdout=null, stderr=null)
            _, _, usage = os.wait4(proc.pid, 0)
        return usage.ru_maxrss / 1024

    alone, tailed = peak_mb("small.jpg"), peak_mb("tail.jpg")
    check(tailed < alone + 256, f"a 1 GiB tail is not buffered: peak RSS {tailed:.0f} MB, {alone:.0f} MB without it")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True, help="the parity set (make_images.py)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(args.images, "variants")
        imgs = os.path.join(tmp, "imgs")
        os.makedirs(imgs)
        for name in sorted(os.listdir(src))[:5]:
            shutil.copy(os.path.join(src, name), imgs)
        os.makedirs(os.path.join(tmp, "empty"))
        c = Clis(args.cli, args.model, tmp)
        check_rows_and_exit(c)
        check_resume(c)
        photo = os.path.join("imgs", sorted(os.listdir(imgs))[0])
        check_outputs(c, photo)
        check_lock_and_walk(c, photo)
        check_long_tail(c)
        v = subprocess.run([args.cli, "--version"], capture_output=True, text=True)
        check(v.returncode == 0 and "backends: opencv-dnn" in v.stdout, f"--version names the backends ({v.stdout.strip()})")
    print(f"cli_test: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
