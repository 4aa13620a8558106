"""Build configuration: every hyper-parameter, round-tripping to JSON in the manifest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from training.models.als import ALSConfig
from training.models.ease import EASEConfig
from training.models.popularity import PopularityConfig
from training.models.predictor import PredictorConfig


class TuneConfig(BaseModel):
    """Validation-split tuning of the ranking models (on the data being built)."""

    model_config = ConfigDict(extra="forbid")

    enabled: Literal["auto", "on", "off"] = "auto"
    # 'auto' tunes when the data has at most this many ratings (each grid point is a full fit
    # and the blend needs EASE, so larger data are built with the defaults).
    max_ratings: int = Field(1_500_000, ge=0)
    als_factors: int = Field(128, ge=1, le=1024)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 1
    als_regularization: list[float] = [10.0, 30.0, 100.0]
    als_alpha: list[float] = [2.0, 5.0, 10.0]
    # ALSConfig.activity_exponent: the penalty x alpha grid runs at the first, the others are
    # tried at the chosen pair. 0.6: best of 0.3-1.0 on ml-latest-small's validation splits
    # (README, Evaluation); 0: none.
    als_activity_exponent: list[float] = Field([0.6, 0.0], min_length=1)
    ease_regularization: list[float] = [200.0, 500.0, 1000.0]
    blend_als_weight: list[float] = [0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 1.0]


class SparkConfig(BaseModel):
    """`--engine spark` (training/spark.py)."""

    model_config = ConfigDict(extra="forbid")

    master: str = "local[*]"
    driver_memory: str = "4g"
    # Where MLlib's ALS checkpoints every 10 iterations (training.spark.session): a temporary
    # directory for a local master when unset; a cluster needs a path all its nodes reach.
    checkpoint_dir: str | None = None
    # MLlib's ALS penalty is λ·n per user and movie (n: their number of ratings), not
    # implicit's λ, so the ranking model has its own value on that scale. 0.1-0.2 matched the
    # local engine's defaults on ml-latest-small (bench/spark.py); 0.05 and 0.5 were worse.
    ranking_regularization: float = Field(0.15, gt=0)
    # The confidence's alpha for MLlib, which suits another value with that penalty: on
    # ml-latest-small (bench/spark.py, activity exponent 0.6) alpha 2 read nDCG@10 0.3637 at
    # 0.15, alpha 5 (the local engine's default) 0.3511 at 0.15 and 0.3601 at 0.3.
    ranking_alpha: float = Field(2.0, ge=0)


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    als: ALSConfig = ALSConfig()
    ease: EASEConfig = EASEConfig()
    use_ease: Literal["auto", "on", "off"] = "auto"
    rating: PredictorConfig = PredictorConfig()
    popularity: PopularityConfig = PopularityConfig()
    tune: TuneConfig = TuneConfig()
    similar_n: int = Field(100, ge=1, le=1000)
    similar_min_ratings: int = Field(3, ge=1)
    # Each known user's best unseen movies, stored in the bundle so that the API reads their
    # ranking instead of scoring the catalog (0: scored on each user's first request). 100
    # covers any k; filters that leave fewer than k in it fall back to scoring.
    user_top_depth: int = Field(100, ge=0, le=1000)
    device: Literal["auto", "cpu", "gpu"] = "cpu"
    spark: SparkConfig = SparkConfig()
