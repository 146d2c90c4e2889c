"""Start or join a Ray cluster for QUASAR, quietly, and shut down only what was started here.

Ray is the optional ``ray`` extra; :func:`require_ray` turns a missing install into one line
(``pip install 'quasar-engine[ray]'``).
"""

from __future__ import annotations

import os
from types import ModuleType

from quasar.extras import require

EXTRA = "ray"


def require_ray(what: str) -> ModuleType:
    """``import ray`` or a one-line :class:`~quasar.extras.MissingExtra` naming the ``ray`` extra."""
    return require("ray", EXTRA, what)


def connect(address: str | None = None, num_cpus: int | None = None, what: str = "quasar --ray") -> bool:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` runs here), or start a local
    one with ``num_cpus`` (None: all cores). Returns True when this call started Ray (the caller
    then shuts it down with :func:`disconnect`); False when Ray was already initialised."""
    ray = require_ray(what)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a scoring job
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    return True


def disconnect(started: bool) -> None:
    """Shut Ray down if :func:`connect` started it (a cluster joined with --address keeps running)."""
    if started:
        import ray

        ray.shutdown()


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
