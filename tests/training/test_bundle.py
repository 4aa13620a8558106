"""Build -> read round trip on a small fixture; a damaged bundle is refused clearly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from training.build import build, rating_beside_ranking
from training.bundle import (
    CURRENT,
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    RankerBundle,
    read_bundle,
    read_ranker_bundle,
)
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.models.als import ALSConfig


def small_config() -> BuildConfig:
    return BuildConfig(
        als=ALSConfig(factors=8, iterations=5),
        tune=TuneConfig(
            enabled="on", als_regularization=[1.0, 5.0], als_alpha=[5.0], ease_regularization=[10.0]
        ),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_movielens_csv

    root = tmp_path_factory.mktemp("bundle")
    data = load_dataset(write_movielens_csv(root / "data"))
    build(data, root / "artifacts", small_config())
    return root / "artifacts"


def test_round_trip(built: Path) -> None:
    bundle = read_bundle(built)
    assert (built / CURRENT).is_symlink()
    manifest = bundle.manifest
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert manifest["counts"] == {"ratings": 720, "users": 60, "movies": 40, "rated_movies": 40, "signals": 0}
    assert manifest["dataset"]["checksum"].startswith("sha256:")
    assert manifest["metrics"]["validation"]["tuned"] is True
    assert set(manifest["files"]) >= {"movies.parquet", "als_item_factors.npy"}
    assert len(bundle.user_ids) == 60
    assert bundle.history.shape == (60, 40)
    assert bundle.similar_positions.shape[0] == 40
    assert bundle.user_top_positions.shape == bundle.user_top_scores.shape == (60, 40)
    unseen = 40 - np.diff(bundle.history.indptr)
    assert ((bundle.user_top_positions >= 0).sum(axis=1) == unseen).all()  # then -1 padding
    assert set(bundle.charts["chart"]) == {"most_rated", "top_rated", "trending"}
    # the served ranking scores the two taste groups apart
    scores = bundle.ranker.scores(bundle.ranker.als.user_factors[[1]], bundle.history[[1]])[0]
    assert scores[np.arange(1, 40, 2)].mean() > scores[np.arange(0, 40, 2)].mean()


def test_second_build_repoints_current(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "art"
    shutil.copytree(built, out, symlinks=True)
    first = (out / CURRENT).resolve()
    from tests.conftest import write_movielens_csv

    build(load_dataset(write_movielens_csv(tmp_path / "d")), out, small_config())
    assert (out / CURRENT).resolve() != first
    assert first.is_dir()  # the old version stays for rollback


def _copy(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(built / CURRENT, target)
    return target


def test_the_ranker_part_is_the_whole_bundles(built: Path) -> None:
    whole, part = read_bundle(built), read_ranker_bundle(built)
    assert type(part) is RankerBundle
    assert (part.path, part.version, part.rating_scale) == (whole.path, whole.version, (1.0, 5.0))
    assert part.movies.equals(whole.movies)
    assert part.charts.equals(whole.charts)
    assert np.array_equal(part.ranker.als.item_factors, whole.ranker.als.item_factors)
    assert (part.ranker.als_weight, part.ranker.ease_weight) == (
        whole.ranker.als_weight,
        whole.ranker.ease_weight,
    )
    assert (part.ranker.ease is None) == (whole.ranker.ease is None)
    if whole.ranker.ease is not None:
        assert part.ranker.ease is not None
        assert np.array_equal(part.ranker.ease.toarray(), whole.ranker.ease.toarray())


READERS = pytest.mark.parametrize("read", [read_bundle, read_ranker_bundle])


@READERS
@pytest.mark.parametrize("name", ["als_item_factors.npy", "movies.parquet"])
def test_tampered_file_is_refused(
    built: Path, tmp_path: Path, read: Callable[[Path], RankerBundle], name: str
) -> None:
    bundle = _copy(built, tmp_path)
    with (bundle / name).open("r+b") as file:
        file.seek(-1, 2)
        last = file.read(1)
        file.seek(-1, 2)
        file.write(bytes([last[0] ^ 1]))
    with pytest.raises(BundleError, match=rf"{name} does not match its checksum"):
        read(bundle)


@READERS
def test_missing_file_is_refused(built: Path, tmp_path: Path, read: Callable[[Path], RankerBundle]) -> None:
    bundle = _copy(built, tmp_path)
    (bundle / "similar.npz").unlink()  # not read by read_ranker_bundle, but the bundle is incomplete
    with pytest.raises(BundleError, match=r"incomplete bundle, missing similar\.npz"):
        read(bundle)


def test_missing_manifest_and_other_format(built: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        read_bundle(tmp_path)
    bundle = _copy(built, tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["format_version"] = 99
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="bundle format 99"):
        read_bundle(bundle)


def test_bundle_has_no_pickles(built: Path) -> None:
    for path in (built / CURRENT).iterdir():
        if path.suffix in {".npy", ".npz"}:
            loaded = np.load(path, allow_pickle=False)  # raises on object arrays
            if hasattr(loaded, "close"):
                loaded.close()


@pytest.mark.parametrize(
    ("device", "n_ratings", "beside"),
    [
        ("cpu", 1_000, True),  # tuned: the grid's small fits leave cores idle
        ("cpu", 2_000_000, False),  # one large CPU fit keeps every core busy
        ("gpu", 2_000_000, True),  # a GPU fit leaves every core idle
        ("gpu", 1_000, True),
    ],
)
def test_rating_model_goes_beside_ranking_while_cores_are_idle(
    device: str, n_ratings: int, beside: bool
) -> None:
    config = BuildConfig(device=device, tune=TuneConfig(max_ratings=1_500_000))
    assert rating_beside_ranking(config, n_ratings) is beside
