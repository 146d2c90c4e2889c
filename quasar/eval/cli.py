"""``quasar evaluate``: correlation of a model's scores with human opinion scores on a dataset.

Loads the dataset first (so a wrong name or root fails before any model is loaded), scores it
with the runtime :class:`quasar.runtime.Scorer` (imported only when the command runs), and
prints SRCC / PLCC / KRCC with bootstrap confidence intervals, how many images were scored and
failed, and, for the datasets in the QUASAR paper's Table 1, the paper's SRCCs next to the
measured one.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from quasar.errors import QuasarError
from quasar.eval.datasets import DATASETS, PAPER_TABLE1, LabeledImage, load_dataset

_SHOW_FAILURES = 5


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="correlate a model's scores with human opinion scores (SRCC/PLCC/KRCC)",
        description="Score an IQA/aesthetics dataset and report SRCC, PLCC (after a 4-parameter "
        "logistic fit) and KRCC with bootstrap 95% CIs, next to the QUASAR paper's Table 1.",
    )
    p.add_argument("--model", default="default", help="fused model (.onnx) or 'default' (default: %(default)s)")
    p.add_argument(
        "--dataset",
        required=True,
        help=f"one of {', '.join(DATASETS)}, or a CSV file with columns path,mos[,group]",
    )
    p.add_argument("--root", help="the unpacked dataset folder (for a CSV: base of relative paths)")
    p.add_argument("--head", default="quality", help="score head to evaluate (default: %(default)s)")
    p.add_argument("--limit", type=int, help="evaluate a random subset of N images (seeded by --seed) (default: all)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs, 0 = none (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed for --limit and the bootstrap (default: %(default)s)")
    p.add_argument("--backend", default="auto", help="runtime backend: auto, onnxruntime, tensorrt, torch (default: %(default)s)")
    p.add_argument("--batch-size", type=int, help="runtime batch size (default: the runtime's)")
    p.add_argument("--workers", type=int, help="decoding workers (default: the runtime's)")
    p.add_argument("-o", "--output", help="also write the report as JSON to this file")
    p.set_defaults(func=run_evaluate)


def make_scorer(model: str | None, backend: str = "auto", batch_size: int | None = None, workers: int | None = None):
    """The runtime Scorer (imported lazily, so that ``quasar --help`` does not load ONNX Runtime).

    :func:`quasar.eval.evaluate.evaluate` drives it through its ``score_iter``. Tests replace
    this factory with one returning a fake scorer.
    """
    try:
        from quasar.runtime import Scorer
    except ImportError as e:
        raise QuasarError(f"the scoring runtime is not available (quasar.runtime.Scorer): {e}") from None
    kwargs: dict[str, Any] = {"backend": backend}
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if workers is not None:
        kwargs["workers"] = workers
    return Scorer(model=model, **kwargs)


def subset(items: list[LabeledImage], limit: int | None, seed: int) -> list[LabeledImage]:
    """A seeded random subset in dataset order: the first N would often be one reference photo."""
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise QuasarError("--limit must be at least 1")
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in keep]


def _fmt(x: float) -> str:
    return "   nan" if x != x else f"{x:+.4f}"


def format_report(report, title: str, paper: dict[str, float] | None) -> list[str]:
    lines = [f"{title}: scored {report.n_scored} of {report.n_items} images, {report.n_failed} failed (head {report.head})"]
    level = round(100 * (1 - report.alpha))
    if report.bootstrap > 0:
        unit = "reference photo" if report.grouped else "image"
        lines.append(f"        value    {level}% CI (bootstrap {report.bootstrap}, resampled by {unit})")
    for name, r in report.metrics.items():
        ci = f"  [{_fmt(r.low)}, {_fmt(r.high)}]" if report.bootstrap > 0 else ""
        lines.append(f"{name.upper():6s} {_fmt(r.value)}{ci}")
    if paper is not None:
        lines.append(
            f"Table 1 SRCC (paper): QUASAR {paper['quasar']:.3f}, CLIP-IQA {paper['clip_iqa']:.3f}; "
            f"measured {report.metrics['srcc'].value:.3f}"
        )
    return lines


def run_evaluate(args: argparse.Namespace) -> int:
    from quasar.extras import require

    require("scipy", "eval", "quasar evaluate")  # the metrics (and .mat datasets) need it
    from quasar.eval.evaluate import DirectionWarning, evaluate

    if args.bootstrap < 0:
        raise QuasarError("--bootstrap must be >= 0")
    key, items = load_dataset(args.dataset, args.root)
    items = subset(items, args.limit, args.seed)
    title = DATASETS[key].title if key in DATASETS else args.dataset
    model = None if args.model in (None, "", "default") else args.model
    scorer = make_scorer(model, backend=args.backend, batch_size=args.batch_size, workers=args.workers)
    print(f"scoring {len(items)} images of {title} with model {args.model} ...", file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DirectionWarning)  # printed below from the report
            report = evaluate(
                scorer, items, head=args.head, bootstrap=args.bootstrap, seed=args.seed, dataset=key,
                progress=sys.stderr.isatty(),
            )
    finally:
        close = getattr(scorer, "close", None)
        if callable(close):
            close()
    paper = PAPER_TABLE1.get(key)
    for line in format_report(report, title, paper):
        print(line)
    for f in report.failures[:_SHOW_FAILURES]:
        print(f"failed: {f['path']}: {f['error']}", file=sys.stderr)
    if report.n_failed > _SHOW_FAILURES:
        print(f"... and {report.n_failed - _SHOW_FAILURES} more failures", file=sys.stderr)
    if report.direction_warning:
        print(f"warning: {report.direction_warning}", file=sys.stderr)
    if args.output:
        doc = {
            "model": args.model,
            "dataset_title": title,
            "root": args.root,
            "limit": args.limit,
            "paper_table1_srcc": paper,
            **report.to_dict(),
        }
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0
