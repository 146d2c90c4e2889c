"""Start or join a Ray cluster for QUASAR, quietly, and shut down only what was started here.

Ray is the optional ``ray`` extra; :func:`require_ray` turns a missing install into one line
(``pip install 'quasar-engine[ray]'``).
"""

from __future__ import annotations

import atexit
import os
import sys
from types import ModuleType

from quasar.errors import QuasarError, one_line
from quasar.extras import require

EXTRA = "ray"


def require_ray(what: str) -> ModuleType:
    """``import ray`` or a one-line :class:`~quasar.extras.MissingExtra` naming the ``ray`` extra."""
    return require("ray", EXTRA, what)


CONNECT_TIMEOUT_S = 30.0  # default of --connect-timeout: how long joining a cluster may take
LOOPBACK = "127.0.0.1"


def connect(address: str | None = None, num_cpus: int | None = None, what: str = "quasar --ray",
            timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` runs here), or start a private
    local one with ``num_cpus`` (None: all cores). Returns True when this call started Ray (the caller
    then shuts it down with :func:`disconnect`); False when Ray was already initialised in this process
    (by its embedder) and ``address`` is None, ``auto`` or that same cluster: a HOST:PORT of another
    cluster is refused with one line, never silently replaced by the one already joined.

    Without ``address`` the cluster is this process's own, never one already running on the machine
    (``address="local"``), and every server of it listens on 127.0.0.1 only, no dashboard
    (docs/scaling.md says how to expose a cluster deliberately). Joining gives up after ``timeout_s``
    with one line (:class:`~quasar.errors.QuasarError`) instead of waiting for ever."""
    ray = require_ray(what)
    if ray.is_initialized():
        _check_same_cluster(ray, address, what, timeout_s)
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a scoring job
    # Ray's own warnings (token authentication is on, no SIGTERM handler off the main thread, ...)
    # are not the user's business: its logger at ERROR; worker logs stay in the session's files
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address is None:
        _start_private(ray, num_cpus=num_cpus, **kwargs)
    else:
        _join(ray, address, what, timeout_s, kwargs)
    _quiet_error_notes()
    no_colour_reset()
    return True


def no_colour_reset() -> None:
    """Undo what importing Ray's CLI logger does to this process (Ray Serve and ``ray.init`` import it):
    ``colorama.init(strip=False)`` wraps ``sys.stdout``/``sys.stderr`` and registers an exit hook that
    writes a colour reset (``ESC[0m``) to a terminal, so every ``--ray`` run and every ``quasar serve``
    ended in a stray colour code. Called after Ray starts and again after it stops (idempotent)."""
    init = sys.modules.get("colorama.initialise")
    if init is None or not getattr(init, "atexit_done", False):
        return
    for name in ("stdout", "stderr"):  # only colorama's own wrappers (a stream set since then stays)
        original = getattr(init, f"orig_{name}", None)
        if original is not None and type(getattr(sys, name)).__name__ == "StreamWrapper":
            setattr(sys, name, original)
    atexit.unregister(init.reset_all)
    init.atexit_done = False


def _silence_stderr_at_exit() -> None:
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _quiet_error_notes() -> None:
    """Ray's driver prints the raylet's notes (a worker killed while the service or an actor pool
    shuts down, ...) on *stdout*, coloured, as "(raylet) ..." lines: they look like errors, and with
    ``-o -`` they would land in the results. They go to Ray's logger instead (INFO: not shown at the
    ERROR level set here; a caller that lowers it sees them)."""
    import logging

    from ray._private import worker

    log = logging.getLogger("ray")

    def to_log(data: dict, ignore_prefix: bool = False) -> None:
        for line in data.get("lines", []):
            log.info("(%s) %s", data.get("pid"), line)

    worker.print_to_stdstream = to_log  # looked up by Ray's error listener at each note


def _start_private(ray: ModuleType, **kwargs) -> None:
    """``ray.init`` of a new local cluster bound to the loopback interface.

    Ray turns a node address of 127.0.0.1 into the machine's network address unless it believes it
    runs without clusters (its ``ENABLE_RAY_CLUSTER``, off on macOS/Windows): that belief is held
    for the start only, so the GCS, raylets, workers and agents all listen on 127.0.0.1."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", _node_ip_address=LOOPBACK, dashboard_host=LOOPBACK, **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a plain HOST:PORT address; None for ``auto``, ``ray://...`` and the like."""
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and "://" not in address:
        return host.strip("[]"), int(port)
    return None


def _probe(address: str, what: str, timeout_s: float) -> None:
    """A HOST:PORT that refuses or does not answer a TCP connection: one line, at once (or after
    ``timeout_s``)."""
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout_s).close()
    except OSError as e:
        why = f"no answer within {timeout_s:g} s (--connect-timeout)" if isinstance(e, TimeoutError) \
            else (e.strerror or str(e))
        raise QuasarError(f"{what}: cannot join the Ray cluster at {address}: {why}; "
                          "is it running and reachable?") from None


def _check_same_cluster(ray: ModuleType, address: str | None, what: str, timeout_s: float) -> None:
    """Ray is already initialised in this process: ``address`` HOST:PORT must be the cluster it joined
    (Ray cannot join a second one; using the first instead would score on a cluster nobody named)."""
    import socket

    hp = None if address is None else _host_port(address)
    if hp is None:
        return
    current = ray.get_runtime_context().gcs_address
    cur_host, _, cur_port = current.rpartition(":")

    def ip(host: str) -> str:
        try:
            return socket.gethostbyname(host)
        except OSError:
            return host

    if int(cur_port) == hp[1] and ip(cur_host) == ip(hp[0]):
        return
    _probe(address, what, timeout_s)
    raise QuasarError(f"{what}: cannot join the Ray cluster at {address}: this process is already connected "
                      f"to the Ray cluster at {current} (ray.init was called before)")


def _join(ray: ModuleType, address: str, what: str, timeout_s: float, kwargs: dict) -> None:
    """``ray.init(address)`` bounded by ``timeout_s``: a HOST:PORT that refuses or does not answer a
    TCP connection fails at once (or after ``timeout_s``); a join that starts but does not finish
    (``auto`` against a cluster it cannot join: Ray retries for ever) fails after ``timeout_s``."""
    import threading

    hint = f"{what}: cannot join the Ray cluster at {address}"
    _probe(address, what, timeout_s)
    done = threading.Event()
    outcome: list = []

    def join() -> None:
        try:
            ray.init(address=address, **kwargs)
            outcome.append(None)
        except BaseException as e:  # handed to the caller's thread
            outcome.append(e)
        finally:
            done.set()

    threading.Thread(target=join, name="quasar-ray-join", daemon=True).start()
    if not done.wait(timeout_s):
        # the abandoned join goes on in the background and Ray's C++ client logs its retries to stderr
        # until the process ends: after this one line, nothing more of it is shown
        atexit.register(_silence_stderr_at_exit)
        raise QuasarError(f"{hint}: not joined within {timeout_s:g} s (--connect-timeout); "
                          "is it running, reachable and of the same Ray version?")
    if outcome[0] is not None:
        e = outcome[0]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise QuasarError(f"{hint}: {one_line(first)[:300]}") from None


def disconnect(started: bool) -> None:
    """Shut Ray down if :func:`connect` started it (a cluster joined with --address keeps running)."""
    if started:
        import ray

        ray.shutdown()
    no_colour_reset()


def quiet_data() -> None:
    """No Ray Data progress bars or per-dataset log lines on stderr: the CLI draws its own bar.
    (Ray Data's errors still show; its INFO/WARNING lines go to the session's log files.)"""
    import logging

    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
