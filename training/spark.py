"""`python -m training build --engine spark`: the build pipeline on Apache Spark, same bundle.

Spark reads the ratings (any URI it reads: a local path, hdfs://, s3a://, ...; Parquet or CSV,
in the canonical columns or MovieLens's userId/movieId) and does the heavy work on the
cluster: id indexing by joins, the ranking model (MLlib ALS with implicitPrefs), the rating
model (biases by aggregation, then explicit ALS on the residuals) and the per-movie sums of the
popularity tables. What the bundle holds is then collected through Arrow, column-wise (no Python
loop over rows): id lists, factor matrices, per-movie sums, and the user x movie ratings the
service needs for seen-filtering. Similar movies, charts and the bundle itself are made by
the code every engine shares (training.build.write_tables_and_bundle).

Spark's ALS weighs each user's penalty by their number of movies (ALS-WR); the bundle's ALS
config says so (`weighted_regularization`) and the service's fold-in uses the same penalty.
Layouts Spark cannot parse itself (MovieLens .dat and ml-100k, the Netflix originals and
sample) are read by the local loaders and handed to Spark as a DataFrame.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyspark.sql.functions as sf
import scipy.sparse as sp
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession

from training.build import Fitted, Laps, write_tables_and_bundle
from training.config import BuildConfig
from training.datasets import DatasetError, load_dataset, registry
from training.datasets.canonical import (
    canonical_movies,
    complete_movies,
    movielens_genres,
    split_title_year,
)
from training.interactions import IdIndex
from training.models.als import ALSConfig, ALSModel
from training.models.popularity import stats_from_sums
from training.models.predictor import RatingPredictor
from training.models.rating import RatingConfig, RatingModel
from training.scoring import Ranker

Step = Callable[[str], None]
# Column names accepted for the canonical ones (MovieLens CSV headers, canonical names).
ALIASES = {"userId": "user_id", "movieId": "movie_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"}


def session(master: str, driver_memory: str = "4g", checkpoint_dir: str | None = None) -> SparkSession:
    """A Spark session for `build_spark`. MLlib's ALS cuts the lineage of its iterations
    every 10 (`checkpointInterval`) only where the context has a checkpoint directory; without
    one a fit's tasks grow deep enough to overflow the JVM's stack (a StackOverflowError in the
    rating model's ALS failed one CI run). A local master gets a temporary directory unless
    given one; a cluster needs a shared path (HDFS, S3: SparkConfig.checkpoint_dir)."""
    # pyspark warns about pandas 3 on every conversion; the conversions used here (Arrow, plain
    # numeric and string columns) are covered by the tests.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    spark = (
        SparkSession.builder.master(master)
        .appName("cinerec-build")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "16")
        .config("spark.cleaner.referenceTracking.cleanCheckpoints", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    if checkpoint_dir is None and master.startswith("local"):
        checkpoint_dir = tempfile.mkdtemp(prefix="cinerec-spark-checkpoints-")
        atexit.register(shutil.rmtree, checkpoint_dir, ignore_errors=True)
    if checkpoint_dir is not None:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    return spark


def build_spark(
    spark: SparkSession, data: str, out: Path, config: BuildConfig, step: Step | None = None
) -> Path:
    """Read `data` with Spark, fit and aggregate there, and write a bundle under `out`."""
    say = step or (lambda message: None)
    lap = Laps()

    say(f"spark {spark.version} at {spark.sparkContext.master}: reading {data}")
    source = read_source(spark, data)
    ratings = source.ratings.cache()
    totals = ratings.agg(
        sf.min("rating"), sf.max("rating"), sf.count("*"), sf.avg("rating"), sf.max("timestamp")
    ).first()
    assert totals is not None
    low, high, n_ratings, mean, now = totals
    if not n_ratings:
        raise DatasetError(f"{data}: no ratings found")
    scale = (float(low), float(high))
    rated_ids = _column(ratings.select("movie_id").distinct(), "movie_id")
    movies = complete_movies(pd.DataFrame({"movie_id": rated_ids}), source.movies)
    movie_index = IdIndex.of(movies["movie_id"])
    user_index = IdIndex(np.sort(_column(ratings.select("user_id").distinct(), "user_id")))
    indexed = (
        ratings.join(sf.broadcast(_positions(spark, movie_index, "movie_id", "i")), "movie_id")
        .join(_positions(spark, user_index, "user_id", "u"), "user_id")
        .select("u", "i", "rating", "timestamp")
        .cache()
    )
    lap("index")

    say("ranking model: MLlib ALS, implicit preferences")
    als = _fit_ranking(indexed, config, scale[1], len(user_index), len(movie_index))
    lap("ranking")
    say("rating model: biases by aggregation, explicit ALS on the residuals")
    rating_model = _fit_rating(
        indexed, config, scale, float(mean), len(user_index), len(movie_index), n_ratings
    )
    lap("rating")
    say("per-movie sums for the charts; collecting the ratings")
    stats = _movie_stats(indexed, movie_index, config, float(mean), int(now))
    frame = indexed.select("u", "i", "rating").toPandas()
    history = sp.csr_matrix(
        (frame["rating"].to_numpy(np.float32), (frame["u"].to_numpy(), frame["i"].to_numpy())),
        shape=(len(user_index), len(movie_index)),
    )
    lap("collect")
    ratings.unpersist()
    indexed.unpersist()
    return write_tables_and_bundle(
        out,
        Fitted(
            dataset={
                "name": source.name,
                "layout": source.layout,
                "checksum": source.checksum,
                "rating_scale": list(scale),
            },
            movies=movies,
            stats=stats,
            user_ids=user_index.ids,
            history=history,
            ranker=Ranker(als, None, 1.0, 0.0, scale[1]),
            rating_model=RatingPredictor(rating_model, None, np.array([0.0, 1.0, 0.0]), scale),
            ease_config=None,
            validation={"tuned": False, "engine": "spark"},
        ),
        config,
        say,
        {
            "feedback": None,
            "device": "spark",
            "engine": "spark",
            "spark": {"version": spark.version, "master": spark.sparkContext.master},
        },
        lap,
    )


@dataclass(frozen=True)
class Source:
    """Ratings as a Spark DataFrame (user_id, movie_id, rating, timestamp), movies in pandas."""

    name: str
    layout: str
    ratings: DataFrame
    movies: pd.DataFrame
    checksum: str


def read_source(spark: SparkSession, data: str) -> Source:
    """Parquet or CSV where Spark can read them; other layouts through the local loaders."""
    local = Path(data).expanduser()
    if "://" not in data and not local.exists() and data in registry.KNOWN:
        local = registry.unpack(registry.fetch(data))
        data = str(local)
    ratings_path = _find(spark, data, ["ratings.parquet", "ratings", "ratings.csv"])
    name = data.rstrip("/").rsplit("/", 1)[-1]
    if ratings_path is None:
        if "://" in data:
            raise DatasetError(f"{data}: no ratings.parquet, ratings/ or ratings.csv there")
        dataset = load_dataset(local)  # MovieLens .dat/ml-100k, Netflix: the local loaders
        frame = spark.createDataFrame(dataset.ratings)
        return Source(dataset.name, dataset.layout, frame, dataset.movies, dataset.checksum)
    ratings = _canonical_ratings(_read(spark, ratings_path))
    movies_path = _find(spark, data, ["movies.parquet", "movies", "movies.csv"])
    movies = _movies(spark, movies_path, _find(spark, data, ["links.parquet", "links.csv"]))
    layout = "spark-parquet" if not ratings_path.endswith(".csv") else "spark-csv"
    return Source(name, layout, ratings, movies, _listing_checksum(spark, ratings_path, movies_path))


def _hadoop_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """A Hadoop Path and its file system: the same API for local paths and every URI Spark reads."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path, hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def _find(spark: SparkSession, base: str, names: list[str]) -> str | None:
    for name in names:
        path, filesystem = _hadoop_path(spark, f"{base.rstrip('/')}/{name}")
        if filesystem.exists(path):
            return str(path.toString())
    return None


def _read(spark: SparkSession, path: str) -> DataFrame:
    if path.endswith(".csv"):
        # RFC 4180 quoting: a quote inside a quoted title is doubled ("").
        return spark.read.option("header", True).option("escape", '"').csv(path)
    return spark.read.parquet(path)


def _canonical_ratings(frame: DataFrame) -> DataFrame:
    frame = frame.toDF(*[ALIASES.get(c, c) for c in frame.columns])
    missing = {"user_id", "movie_id", "rating"} - set(frame.columns)
    if missing:
        raise DatasetError(f"ratings lack the columns {sorted(missing)} (have {frame.columns})")
    timestamp = sf.col("timestamp").cast("long") if "timestamp" in frame.columns else sf.lit(0).cast("long")
    return frame.select(
        sf.col("user_id").cast("long").alias("user_id"),
        sf.col("movie_id").cast("long").alias("movie_id"),
        sf.col("rating").cast("float").alias("rating"),
        timestamp.alias("timestamp"),
    ).dropna(subset=["user_id", "movie_id", "rating"])


def _movies(spark: SparkSession, path: str | None, links: str | None) -> pd.DataFrame:
    """The movies table, collected (one row per movie: small) and made canonical."""
    if path is None:
        return canonical_movies(pd.DataFrame({"movie_id": pd.Series(dtype="int64"), "title": []}))
    frame = _read(spark, path).toPandas().rename(columns=ALIASES).astype({"movie_id": "int64"})
    if "year" not in frame:  # MovieLens: the year sits in the title, '(no genres listed)'
        title, year = split_title_year(frame["title"])
        frame = frame.assign(title=title, year=year, genres=movielens_genres(frame["genres"]))
    if links is not None and "imdb_id" not in frame:
        extra = _read(spark, links).toPandas().rename(columns=ALIASES)
        frame = frame.merge(
            extra[["movie_id", "imdb_id", "tmdb_id"]].astype({"movie_id": "int64"}),
            on="movie_id",
            how="left",
        )
    return canonical_movies(frame)


def _listing_checksum(spark: SparkSession, *paths: str | None) -> str:
    """sha256 over the input files' names and sizes (hashing terabytes of content is not worth it)."""
    digest = hashlib.sha256()
    for path in filter(None, paths):
        hadoop_path, filesystem = _hadoop_path(spark, path)
        files = filesystem.listFiles(hadoop_path, True)
        while files.hasNext():
            status = files.next()
            digest.update(f"{status.getPath().getName()}:{status.getLen()};".encode())
    return "listing-sha256:" + digest.hexdigest()


def _column(frame: DataFrame, name: str) -> np.ndarray:
    return frame.toPandas()[name].to_numpy(np.int64)


def _positions(spark: SparkSession, index: IdIndex, id_column: str, position_column: str) -> DataFrame:
    """(id, position) pairs of an index, as a DataFrame to join on."""
    frame = pd.DataFrame({id_column: index.ids, position_column: np.arange(len(index), dtype=np.int32)})
    return spark.createDataFrame(frame)


def _factors(frame: DataFrame, rows: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) factors -> a dense rows x rank matrix; rows never fitted stay 0."""
    wide = frame.select("id", *[sf.col("features")[j].alias(f"f{j}") for j in range(rank)]).toPandas()
    out = np.zeros((rows, rank), dtype=np.float32)
    out[wide["id"].to_numpy()] = wide.drop(columns="id").to_numpy(np.float32)
    return out


def _fit_ranking(
    indexed: DataFrame, config: BuildConfig, scale_max: float, n_users: int, n_movies: int
) -> ALSModel:
    """Confidence 1 + alpha * a_u * rating / top, as the local engine (ALSModel.fit_ratings;
    MLlib: 1 + alpha * |r|): a_u is the user's activity multiplier, (m / n_u)^β with n_u
    their number of ratings and m the median of the users'. MLlib's penalty is λ·n
    (`weighted_regularization`), on its own scale (`spark.ranking_regularization`), and alpha
    is the Spark engine's own (`spark.ranking_alpha`)."""
    cfg = config.als.model_copy(
        update={
            "regularization": config.spark.ranking_regularization,
            "weighted_regularization": True,
            "alpha": config.spark.ranking_alpha,
        }
    )
    weight = sf.col("rating") / scale_max if cfg.weighting == "rating" else sf.lit(1.0)
    if cfg.activity_exponent:
        rated = indexed.groupBy("u").agg(sf.count(sf.lit(1)).alias("n"))
        (reference,) = rated.agg(sf.median("n")).collect()[0]  # as numpy's: the middle two's mean
        cfg = cfg.model_copy(update={"activity_reference": float(reference)})
        indexed = indexed.join(rated, "u")
        weight = weight * sf.pow(sf.lit(reference) / sf.col("n"), sf.lit(cfg.activity_exponent))
    users, items = _mllib_als(
        indexed.withColumn("w", weight), "w", (n_users, n_movies), cfg, alpha=cfg.alpha, implicitPrefs=True
    )
    return ALSModel(cfg, users, items)


def _mllib_als(
    frame: DataFrame,
    rating_column: str,
    shape: tuple[int, int],
    config: ALSConfig | RatingConfig,
    **params: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit MLlib's ALS on (u, i, rating_column) with the factors, iterations, penalty and seed
    of `config` (plus `params`) and return dense user and movie factors."""
    rank = config.factors
    model = ALS(
        userCol="u",
        itemCol="i",
        ratingCol=rating_column,
        rank=rank,
        maxIter=config.iterations,
        regParam=config.regularization,
        seed=config.random_state,
        **params,
    ).fit(frame)
    return _factors(model.userFactors, shape[0], rank), _factors(model.itemFactors, shape[1], rank)


def _fit_rating(
    indexed: DataFrame,
    config: BuildConfig,
    scale: tuple[float, float],
    mean: float,
    n_users: int,
    n_movies: int,
    n_ratings: int,
) -> RatingModel:
    """μ + b_u + b_i + p_u·q_i: regularised biases by aggregation, then MLlib's explicit ALS
    (ALS-WR, the penalty our rating model uses) on what the biases leave."""
    rating = config.rating
    cfg = rating.mf if n_ratings <= rating.large_ratings else rating.mf_large
    lam = cfg.bias_regularization
    item_bias = indexed.groupBy("i").agg(
        (sf.sum(sf.col("rating") - mean) / (sf.count("*") + lam)).alias("bi")
    )
    with_item = indexed.join(sf.broadcast(item_bias), "i")
    user_bias = with_item.groupBy("u").agg(
        (sf.sum(sf.col("rating") - mean - sf.col("bi")) / (sf.count("*") + lam)).alias("bu")
    )
    residuals = with_item.join(user_bias, "u").withColumn(
        "residual", sf.col("rating") - mean - sf.col("bi") - sf.col("bu")
    )
    user_factors = np.zeros((n_users, cfg.factors), dtype=np.float32)
    item_factors = np.zeros((n_movies, cfg.factors), dtype=np.float32)
    if cfg.factors:
        user_factors, item_factors = _mllib_als(
            residuals, "residual", (n_users, n_movies), cfg, implicitPrefs=False
        )
    return RatingModel(
        cfg,
        mean,
        _dense(user_bias.toPandas(), "u", "bu", n_users),
        _dense(item_bias.toPandas(), "i", "bi", n_movies),
        user_factors,
        item_factors,
        scale,
    )


def _dense(frame: pd.DataFrame, position: str, value: str, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float64)
    out[frame[position].to_numpy()] = frame[value].to_numpy(np.float64)
    return out


def _movie_stats(
    indexed: DataFrame, movies: IdIndex, config: BuildConfig, mean: float, now: int
) -> pd.DataFrame:
    """Count, sum and time-decayed recent count per movie, aggregated by Spark; `now` is the
    latest rating time, `mean` the global mean."""
    popularity = config.popularity
    age_days = (sf.lit(now) - sf.col("timestamp")) / 86_400.0
    decayed = sf.when(
        age_days <= popularity.trending_window_days,
        sf.pow(sf.lit(2.0), -age_days / popularity.trending_half_life_days),
    ).otherwise(0.0)
    sums = (
        indexed.groupBy("i")
        .agg(sf.count("*").alias("n"), sf.sum("rating").alias("total"), sf.sum(decayed).alias("trending"))
        .toPandas()
    )
    n, total, trending = (_dense(sums, "i", name, len(movies)) for name in ("n", "total", "trending"))
    return stats_from_sums(movies.ids, n, total, trending, mean, popularity)
