"""The Spark engine against the local engine: same data, same run, same holdout.

The data (synthetic ml-25m-shaped, scaled down by default, or --data) is split per user 80/20
(seed 0); the training part is written once in the MovieLens CSV layout and both engines build
a bundle from that directory (no tuning, ALS only, so the ranking models are alike). Prints
each build's wall time and their ratio, and the nDCG@10 of each bundle's ALS ranking on the
held-out part, so speed and quality are read together. The Spark time excludes starting the
JVM (printed apart). Spark on one machine is expected to be much slower: its point is that it
scales out.

    .venv/bin/python -m bench.spark                                      # 1M synthetic ratings
    .venv/bin/python -m bench.spark --data ../shared/datasets/ml-latest-small
    .venv/bin/python -m bench.spark --data ... --spark-reg 0.05 0.1 0.2  # compare penalties
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.synthetic import scaled_down
from training.build import build
from training.bundle import read_bundle
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.evaluate import bundle_ndcg
from training.metrics import holdout_split


def write_movielens(ratings: pd.DataFrame, movies: pd.DataFrame, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ratings.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(
        directory / "ratings.csv", index=False
    )
    titles = movies["title"] + movies["year"].map(lambda y: f" ({y})" if pd.notna(y) else "")
    pd.DataFrame({"movieId": movies["movie_id"], "title": titles, "genres": movies["genres"]}).to_csv(
        directory / "movies.csv", index=False
    )
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a dataset path or name (default: synthetic)")
    parser.add_argument("--ratings", type=int, default=1_000_000, help="synthetic size")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument(
        "--spark-reg", type=float, nargs="+", default=[BuildConfig().spark.ranking_regularization]
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="cinerec-bench-spark-"))

    if args.data:
        dataset = load_dataset(args.data)
    else:
        dataset = load_dataset(scaled_down(work / "synthetic", args.ratings))
    train, test = holdout_split(dataset.ratings, 0.2, 0)
    data = write_movielens(train, dataset.movies, work / "train")
    config = BuildConfig(tune=TuneConfig(enabled="off"), use_ease="off")
    print(f"data: {dataset.name}, {len(train):,} training ratings, {len(test):,} held out")

    started = time.perf_counter()
    local_dir = build(load_dataset(data), work / "local", config)
    local_s = time.perf_counter() - started
    local_ndcg = bundle_ndcg(read_bundle(local_dir), test)
    print(f"local engine (implicit ALS, numpy MF): {local_s:.1f}s, ALS nDCG@10 {local_ndcg:.4f}")

    from training.spark import build_spark, session

    started = time.perf_counter()
    spark = session(args.master)
    start_s = time.perf_counter() - started
    print(f"spark {spark.version} ({spark.sparkContext.master}) session start: {start_s:.1f}s")
    try:
        for reg in args.spark_reg:
            spark_config = config.model_copy(
                update={"spark": config.spark.model_copy(update={"ranking_regularization": reg})}
            )
            started = time.perf_counter()
            spark_dir = build_spark(spark, str(data), work / f"spark-{reg:g}", spark_config)
            spark_s = time.perf_counter() - started
            spark_ndcg = bundle_ndcg(read_bundle(spark_dir), test)
            print(
                f"spark engine (MLlib ALS, regParam {reg:g}): {spark_s:.1f}s "
                f"({spark_s / local_s:.1f}x local), ALS nDCG@10 {spark_ndcg:.4f} "
                f"({spark_ndcg - local_ndcg:+.4f} vs local)"
            )
    finally:
        spark.stop()
    print(f"work files: {work}")


if __name__ == "__main__":
    main()
