"""Untuned builds: held-out ALS nDCG@10 of the local engine at a few (alpha, activity
exponent) points, same data, same split, same run.

Data over `TuneConfig.max_ratings` (1.5M) is built with the ALS defaults, untuned; this
compares those defaults with the points given, on data small enough to hold out. Each
user's ratings are split 80/20 (`--seed`); each point is a full `training build` of the
training part (tuning off, EASE off, ALS alone, as untuned builds serve), scored on the
held-out part. The first point is the defaults.

    .venv/bin/python -m bench.defaults --data ../shared/datasets/ml-latest-small
    .venv/bin/python -m bench.defaults --data ../shared/datasets/netflix-prize-sample --seed 1
    .venv/bin/python -m bench.defaults                  # 1M synthetic ratings (bench/synthetic.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

from bench.synthetic import scaled_down
from training.build import build
from training.bundle import read_bundle
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.evaluate import bundle_ndcg
from training.metrics import holdout_split


def point(text: str) -> tuple[float, float]:
    alpha, exponent = text.split(",")
    return float(alpha), float(exponent)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a dataset path or name (default: synthetic)")
    parser.add_argument("--ratings", type=int, default=1_000_000, help="synthetic size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-user 80/20 split")
    parser.add_argument(
        "--points",
        type=point,
        nargs="+",
        default=[(2.0, 0.0), (2.0, 0.6), (5.0, 0.0)],
        metavar="ALPHA,EXPONENT",
        help="(alpha, activity exponent) points compared with the defaults",
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="cinerec-bench-defaults-"))
    dataset = load_dataset(args.data or scaled_down(work / "synthetic", args.ratings))
    train, test = holdout_split(dataset.ratings, 0.2, args.seed)
    print(f"data: {dataset.name}, {len(train):,} training ratings, {len(test):,} held out (seed {args.seed})")
    base = BuildConfig(tune=TuneConfig(enabled="off"), use_ease="off", user_top_depth=0)
    defaults = (base.als.alpha, base.als.activity_exponent)
    for alpha, exponent in [defaults, *[p for p in args.points if p != defaults]]:
        als = base.als.model_copy(update={"alpha": alpha, "activity_exponent": exponent})
        built = build(
            dataclasses.replace(dataset, ratings=train),
            work / f"{alpha:g}-{exponent:g}",
            base.model_copy(update={"als": als}),
        )
        ndcg = bundle_ndcg(read_bundle(built), test)
        label = " (the defaults)" if (alpha, exponent) == defaults else ""
        print(f"alpha {alpha:g}, exponent {exponent:g}{label}: ALS nDCG@10 {ndcg:.4f}")


if __name__ == "__main__":
    main()
