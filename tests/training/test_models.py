"""Model contracts: fit / save / load round trip, determinism, fold-in, cold start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.conftest import synthetic_ratings
from training.interactions import IdIndex, user_item_matrix
from training.models.als import TILE, ALSConfig, ALSModel, confidence
from training.models.ease import EASEConfig, fit_ease
from training.models.knn import ItemKNN, KNNConfig
from training.models.popularity import PopularityConfig, charts, movie_stats
from training.models.predictor import PredictorConfig, RatingPredictor, drift_offset
from training.models.rating import RatingConfig, RatingModel
from training.models.similar import similar_movies
from training.scoring import Ranker


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    raw = synthetic_ratings().rename(columns={"userId": "user_id", "movieId": "movie_id"})
    return user_item_matrix(raw, IdIndex.of(raw["user_id"]), IdIndex.of(raw["movie_id"]))


def _als(matrix: sp.csr_matrix, seed: int = 0) -> ALSModel:
    conf = matrix.copy()
    conf.data = confidence(matrix.data, "rating", 5.0, 5.0)
    return ALSModel.fit(conf, ALSConfig(factors=8, regularization=1.0, alpha=5.0, random_state=seed))


@pytest.mark.parametrize("largest", [500, 2**40])  # a dense lookup table, then a binary search
def test_id_index_positions(largest: int) -> None:
    ids = np.array([3, 7, 8, 120, largest], dtype=np.int64)
    index = IdIndex.of(ids[::-1])
    asked = np.array([8, 3, 4, largest, -5, largest + 1, 0, 120, 2**62], dtype=np.int64)
    assert index.positions(asked).tolist() == [2, 0, -1, 4, -1, -1, -1, 3, -1]
    assert [index.position(int(value)) for value in asked] == index.positions(asked).tolist()
    assert index.positions(asked.tolist()).tolist() == index.positions(asked).tolist()  # a few ids
    many = np.resize(asked, 100)  # past the one-by-one lookup of a short list
    assert index.positions(many.tolist()).tolist() == index.positions(many).tolist()
    empty = IdIndex.of(np.array([], dtype=np.int64))
    assert empty.positions(asked).tolist() == [-1] * len(asked)
    assert empty.positions(asked.tolist()).tolist() == [-1] * len(asked)
    assert [empty.position(int(value)) for value in asked] == [-1] * len(asked)


class TestALS:
    def test_save_load_round_trip(self, matrix: sp.csr_matrix, tmp_path: Path) -> None:
        model = _als(matrix)
        model.save(tmp_path)
        loaded = ALSModel.load(tmp_path)
        np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
        assert loaded.config == model.config

    def test_deterministic_with_seed(self, matrix: sp.csr_matrix) -> None:
        np.testing.assert_allclose(_als(matrix).item_factors, _als(matrix).item_factors, rtol=1e-5)

    def test_learns_the_taste_groups(self, matrix: sp.csr_matrix) -> None:
        model = _als(matrix)
        scores = model.user_factors @ model.item_factors.T
        # user row 1 is user 2 (even): even movies (odd positions, ids start at 1) score higher
        even_movies = np.arange(1, 40, 2)
        odd_movies = np.arange(0, 40, 2)
        assert scores[1, even_movies].mean() > scores[1, odd_movies].mean()

    def test_fold_in_reproduces_a_trained_user(self, matrix: sp.csr_matrix) -> None:
        model = _als(matrix)
        row = matrix[5]
        folded = model.fold_in(row.indices, confidence(row.data, "rating", 5.0, 5.0))
        trained = model.user_factors[5]
        cosine = folded @ trained / (np.linalg.norm(folded) * np.linalg.norm(trained))
        assert cosine > 0.99

    def test_activity_normalisation_is_fitted_and_folded_in_alike(self) -> None:
        """fit_ratings scales each user's weights by (median / n)^exponent; the ranker's
        fold-in applies the same multiplier, so it reproduces the lightest and the heaviest
        trained users, whose factors differ from an unscaled fit's."""
        rng = np.random.default_rng(3)
        rated = rng.integers(2, 50, size=80)  # users who rated 2 to 49 of 60 movies
        rows = np.repeat(np.arange(80), rated)
        columns = np.concatenate([rng.choice(60, n, replace=False) for n in rated])
        stars = rng.integers(1, 6, size=len(rows)).astype(np.float32)
        matrix = sp.csr_matrix((stars, (rows, columns)), shape=(80, 60))
        config = ALSConfig(factors=8, regularization=1.0, alpha=5.0, activity_exponent=1.0)
        model = ALSModel.fit_ratings(matrix, config, 5.0)
        plain = ALSModel.fit_ratings(matrix, config.model_copy(update={"activity_exponent": 0.0}), 5.0)
        reference = model.config.activity_reference
        assert reference is not None
        assert reference == np.median(rated)
        assert plain.config.activity_reference is None
        ranker = Ranker(model, None, 1.0, 0.0, 5.0)
        for user in (int(rated.argmin()), int(rated.argmax())):
            row = matrix[user]
            multiplier = reference / len(row.indices)
            np.testing.assert_allclose(
                ranker.confidences(row.data), 1 + 5.0 * multiplier * row.data / 5.0, rtol=1e-6
            )
            folded = ranker.fold_in(row.indices, row.data)
            for trained, expected in ((model.user_factors[user], True), (plain.user_factors[user], False)):
                error = np.linalg.norm(folded - trained) / np.linalg.norm(trained)
                assert bool(error < 0.05) == expected, (user, error)  # ~0.02 against 0.2-1.1 here

    def test_event_signals_are_fitted_and_folded_in_alike(self) -> None:
        """Events (weights on movies the user did not rate) get 1 + alpha * weight in the fit
        and in the ranker's fold-in, with no activity multiplier, which counts rated movies
        only: the lightest and the heaviest users' ratings plus events fold in to their trained
        factors, and would not if the events were read as ratings."""
        rng = np.random.default_rng(5)
        rated = rng.integers(2, 40, size=80)  # users who rated 2 to 39 of 60 movies
        picks = [rng.choice(60, n + 3, replace=False) for n in rated]  # rated, then 3 events
        users = np.arange(80)
        stars = rng.integers(1, 6, size=int(rated.sum())).astype(np.float32)
        ratings = sp.csr_matrix(
            (stars, (np.repeat(users, rated), np.concatenate([p[:-3] for p in picks]))), shape=(80, 60)
        )
        weights = rng.choice([0.25, 1.0], size=240)
        signals = sp.csr_matrix(
            (weights, (np.repeat(users, 3), np.concatenate([p[-3:] for p in picks]))), shape=(80, 60)
        )
        config = ALSConfig(factors=8, regularization=1.0, alpha=5.0, activity_exponent=1.0)
        model = ALSModel.fit_ratings(ratings, config, 5.0, signals=signals)
        ranker = Ranker(model, None, 1.0, 0.0, 5.0)
        for user in (int(rated.argmin()), int(rated.argmax())):
            stars_row, events = ratings[user], signals[user]
            items = np.concatenate([stars_row.indices, events.indices])
            values = np.concatenate([stars_row.data, events.data * 5.0])  # an event's weight x top
            mask = np.arange(len(items)) < stars_row.nnz
            conf = ranker.confidences(values, mask)
            np.testing.assert_allclose(conf[~mask], 1 + 5.0 * events.data, rtol=1e-6)
            multiplier = model.config.activity(stars_row.nnz)
            np.testing.assert_allclose(conf[mask], confidence(stars_row.data, "rating", 5.0, 5.0, multiplier))
            trained = model.user_factors[user]
            error = np.linalg.norm(ranker.fold_in(items, values, mask) - trained) / np.linalg.norm(trained)
            assert error < 0.05, (user, error)  # ~0.01 here
            if user == int(rated.argmin()):  # ~0.23 with the events read as ratings
                as_ratings = ranker.fold_in(items, values)
                assert np.linalg.norm(as_ratings - trained) / np.linalg.norm(trained) > 0.1

    @pytest.mark.parametrize("weighted", [False, True])
    @pytest.mark.parametrize("length", [1, 3, 7, 8, 30])  # below the 8 factors (Woodbury), then not
    def test_fold_in_solves_the_normal_equations(self, length: int, weighted: bool) -> None:
        rng = np.random.default_rng(length)
        config = ALSConfig(factors=8, regularization=0.5, alpha=3.0, weighted_regularization=weighted)
        model = ALSModel(config, rng.normal(size=(2, 8)), rng.normal(size=(40, 8)))
        items = rng.choice(40, length, replace=False)
        conf = confidence(rng.uniform(0.5, 5.0, length), "rating", 3.0, 5.0).astype(np.float64)
        y = model.item_factors[items].astype(np.float64)
        penalty = 0.5 * (length if weighted else 1)
        a = model.item_factors.T.astype(np.float64) @ model.item_factors + penalty * np.eye(8)
        a += (y.T * (conf - 1.0)) @ y
        expected = np.linalg.solve(a, y.T @ conf)
        np.testing.assert_allclose(model.fold_in(items, conf), expected, rtol=1e-4, atol=1e-5)

    def test_fold_in_with_a_confidence_below_one_is_still_exact(self) -> None:
        """No real (C - I)^½ then: solved by Cholesky, never NaN."""
        rng = np.random.default_rng(9)
        model = ALSModel(
            ALSConfig(factors=8, regularization=0.5), rng.normal(size=(2, 8)), rng.normal(size=(40, 8))
        )
        items, conf = np.array([3, 9]), np.array([0.7, 2.0])
        y = model.item_factors[items].astype(np.float64)
        a = model.item_factors.T.astype(np.float64) @ model.item_factors + 0.5 * np.eye(8)
        a += (y.T * (conf - 1.0)) @ y
        np.testing.assert_allclose(
            model.fold_in(items, conf), np.linalg.solve(a, y.T @ conf), rtol=1e-4, atol=1e-5
        )

    def test_fold_in_of_nothing_is_zero(self, matrix: sp.csr_matrix) -> None:
        assert not _als(matrix).fold_in(np.array([], dtype=np.int64), np.array([])).any()


class TestRatingModel:
    def test_predicts_taste_and_cold_start(self, matrix: sp.csr_matrix, tmp_path: Path) -> None:
        model = RatingModel.fit(matrix, RatingConfig(factors=4, iterations=5), (0.5, 5.0))
        liked, disliked = model.predict(np.array([1, 1]), np.array([1, 0]))  # user 2, movies 2 and 1
        assert liked > disliked
        unknown = model.predict(np.array([-1, 1, -1]), np.array([0, -1, -1]))
        assert unknown[2] == pytest.approx(model.mean, abs=1e-5)
        assert unknown[0] == pytest.approx(model.mean + model.item_bias[0], abs=1e-5)
        assert unknown[1] == pytest.approx(min(5.0, model.mean + model.user_bias[1]), abs=1e-5)
        assert (unknown >= 0.5).all()
        assert (unknown <= 5.0).all()
        model.save(tmp_path)
        again = RatingModel.load(tmp_path)
        np.testing.assert_allclose(
            again.predict(np.array([3]), np.array([4])), model.predict(np.array([3]), np.array([4]))
        )

    def test_prediction_is_the_formula(self, matrix: sp.csr_matrix) -> None:
        model = RatingModel.fit(matrix, RatingConfig(factors=4, iterations=3), (0.5, 5.0))
        rng = np.random.default_rng(1)
        users = rng.integers(0, matrix.shape[0], 200)
        items = rng.integers(0, matrix.shape[1], 200)
        expected = (
            model.mean
            + model.user_bias[users]
            + model.item_bias[items]
            + np.einsum("ij,ij->i", model.user_factors[users], model.item_factors[items])
        )
        np.testing.assert_allclose(model.predict(users, items), np.clip(expected, 0.5, 5.0), atol=1e-5)

    def test_fold_in_uses_new_ratings(self, matrix: sp.csr_matrix) -> None:
        model = RatingModel.fit(matrix, RatingConfig(factors=4, iterations=5), (0.5, 5.0))
        lover, bias = model.fold_in(np.arange(1, 20, 2), np.full(10, 5.0))
        hater, bias_h = model.fold_in(np.arange(1, 20, 2), np.full(10, 1.0))
        item = np.array([21])
        assert model.predict_for(lover, bias, item)[0] > model.predict_for(hater, bias_h, item)[0]


def test_ease_matches_the_closed_form() -> None:
    """B = I - P diag(1/diag P), P = (XᵀX + λI)⁻¹ (Steck 2019), against a float64 numpy inverse."""
    rng = np.random.default_rng(4)
    binary = sp.csr_matrix((rng.random((60, 25)) < 0.3).astype(np.float32))
    weights = fit_ease(binary, EASEConfig(regularization=7.0, min_count=1, keep=1000)).toarray()
    x = binary.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(25))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_ease_weights_are_sparse_and_useful(matrix: sp.csr_matrix) -> None:
    binary = matrix.copy()
    binary.data[:] = 1
    weights = fit_ease(binary, EASEConfig(regularization=10.0, min_count=1, keep=5))
    assert weights.shape == (40, 40)
    assert (weights.getnnz(axis=1) <= 5).all()
    assert weights.diagonal().sum() == 0
    scores = (binary[1] @ weights).toarray().ravel()
    assert scores[np.arange(1, 40, 2)].mean() > scores[np.arange(0, 40, 2)].mean()


def test_similar_movies_never_self_and_respects_candidates() -> None:
    factors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.05], [0.0, 0.0]], dtype=np.float32)
    allowed = np.array([True, True, True, False, True])
    positions, scores = similar_movies(factors, allowed, n=2)
    assert positions[0].tolist() == [1, 2]  # 3 is closer but not a candidate
    assert 0 not in positions[0]
    assert positions[4].tolist() == [-1, -1]  # zero vector: no neighbours
    assert scores[0, 0] >= scores[0, 1]
    # More neighbours asked for than candidates exist: the rest is padding.
    positions, scores = similar_movies(factors, allowed, n=6)
    assert positions[0].tolist() == [1, 2, -1, -1, -1, -1]  # 4 is a zero vector
    assert scores[0, 2:].tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("n", [1, 7])
def test_similar_movies_match_brute_force_cosine(n: int) -> None:
    rng = np.random.default_rng(3)
    factors = rng.normal(size=(300, 8)).astype(np.float32)
    allowed = rng.random(300) < 0.7
    positions, scores = similar_movies(factors, allowed, n=n)
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    cosine[:, ~allowed] = -np.inf
    np.fill_diagonal(cosine, -np.inf)
    expected = np.sort(cosine, axis=1)[:, ::-1][:, :n]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    chosen = np.take_along_axis(cosine, positions, axis=1)
    np.testing.assert_allclose(chosen, expected, atol=1e-5)


@pytest.mark.parametrize("blend", [False, True])
def test_best_unseen_is_the_top_of_the_full_scores(matrix: sp.csr_matrix, blend: bool) -> None:
    """What the build stores per user (the one-user scan, batches of 7 users over threads)
    equals sorting `Ranker.scores`, the dense product, over every movie the user has not rated,
    for the ALS-only ranker and the EASE blend."""
    als = _als(matrix)
    ease = fit_ease(matrix, EASEConfig(regularization=50.0)) if blend else None
    ranker = Ranker(als, ease, als_weight=0.7, ease_weight=0.3 if blend else 0.0, scale_max=5.0)
    depth = 12
    positions, scores = ranker.best_unseen(als.user_factors, matrix, depth, batch=7)
    full = ranker.scores(als.user_factors, matrix)
    for user in range(matrix.shape[0]):
        rated = set(matrix[user].indices.tolist())
        assert not rated & set(positions[user].tolist())
        unseen = np.array([m for m in range(matrix.shape[1]) if m not in rated])
        expected = np.sort(full[user, unseen])[::-1][:depth]
        np.testing.assert_allclose(scores[user], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(full[user, positions[user]], scores[user], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("blend", [False, True])
def test_one_users_best_unseen_equals_their_row_of_a_batch(matrix: sp.csr_matrix, blend: bool) -> None:
    """A request ranks one user in one compiled call (EASE rows added up directly, a heap for
    the top); the build runs the same kernel over batches of users, which must hand each user
    their own row. A mask keeps exactly the best allowed ones."""
    als = _als(matrix)
    ease = fit_ease(matrix, EASEConfig(regularization=50.0)) if blend else None
    ranker = Ranker(als, ease, 0.6, 0.4 if blend else 0.0, 5.0)
    depth = 15
    positions, scores = ranker.best_unseen(als.user_factors, matrix, depth)
    full = ranker.scores(als.user_factors, matrix)
    mask = np.arange(matrix.shape[1]) % 3 != 0
    for user in (0, 7, 33):
        rated = matrix[user].indices
        one, one_scores = ranker.user_best_unseen(als.user_factors[user], rated, rated, depth)
        assert one.tolist() == positions[user].tolist()
        np.testing.assert_allclose(one_scores, scores[user], rtol=1e-5, atol=1e-6)
        allowed, allowed_scores = ranker.user_best_unseen(als.user_factors[user], rated, rated, depth, mask)
        candidates = np.array([m for m in range(matrix.shape[1]) if mask[m] and m not in set(rated.tolist())])
        expected = candidates[np.argsort(-full[user, candidates], kind="stable")[:depth]]
        assert allowed.tolist() == expected.tolist()
        np.testing.assert_allclose(allowed_scores, full[user, expected], rtol=1e-5, atol=1e-6)


def test_one_users_best_unseen_stops_where_the_catalog_does() -> None:
    """Fewer than n when seen and masked-out movies leave fewer; ties go to the lower position."""
    factors = np.ones((5, 2), dtype=np.float32)  # every movie scores the same
    ranker = Ranker(ALSModel(ALSConfig(factors=2), factors[:1], factors), None, 1.0, 0.0, 5.0)
    vector = np.ones(2, dtype=np.float32)
    seen = np.array([1], dtype=np.int64)
    assert ranker.user_best_unseen(vector, seen, seen, 3)[0].tolist() == [0, 2, 3]
    mask = np.array([True, True, False, True, False])
    positions, scores = ranker.user_best_unseen(vector, seen, seen, 10, mask)
    assert positions.tolist() == [0, 3]
    assert scores.tolist() == [2.0, 2.0]
    assert len(ranker.user_best_unseen(vector, seen, seen, 0)[0]) == 0


@pytest.mark.parametrize("seed", range(4))
def test_one_users_best_unseen_is_the_brute_force_top_n(seed: int) -> None:
    """The scan scores the longest factor vectors first and stops where ‖x‖‖y‖ says no later
    movie can enter; EASE-reached movies beyond that point are bounded with their EASE part.
    Against scoring every movie and sorting: several tiles, long-tailed norms, zero vectors
    (never-rated movies: exact ties, which go to the lower position), EASE weights of both
    signs, masks from strict to none, seen movies."""
    rng = np.random.default_rng(seed)
    items, f = 3 * TILE + 77, 16
    factors = rng.normal(size=(items, f)) * rng.pareto(2.0, size=(items, 1))
    factors[rng.choice(items, 300, replace=False)] = 0.0
    reached = rng.random((items, items)) < 0.02
    ease = sp.csr_matrix(
        np.where(reached, rng.normal(scale=0.5, size=(items, items)), 0.0).astype(np.float32)
    )
    als = ALSModel(ALSConfig(factors=f), rng.normal(size=(2, f)), factors)
    for als_weight, ease_weight in ((1.0, 0.0), (0.6, 0.4), (0.0, 1.0)):
        ranker = Ranker(als, ease, als_weight, ease_weight, 5.0)
        for _ in range(15):
            history = rng.choice(items, rng.integers(1, 12), replace=False)
            vector = (rng.normal(size=f) * rng.uniform(0.01, 2.0)).astype(np.float32)
            mask = rng.random(items) < rng.choice([0.01, 0.1, 0.5, 1.0])
            n = int(rng.choice([1, 3, 10, 40]))
            scores = als_weight * (als.item_factors @ vector).astype(np.float64)
            scores += ease_weight * np.asarray(ease[history].sum(axis=0), dtype=np.float64).ravel()
            candidates = np.flatnonzero(mask & ~np.isin(np.arange(items), history))
            expected = candidates[np.lexsort((candidates, -scores[candidates]))][:n]
            positions, found = ranker.user_best_unseen(vector, history, history, n, mask)
            assert positions.tolist() == expected.tolist()
            np.testing.assert_allclose(found, scores[expected], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [1, 3, 15, 16, 40])
def test_a_visitors_best_is_fold_in_then_ranking_then_because(length: int) -> None:
    """`visitor_best` (one compiled call for a history shorter than the number of factors,
    here 16; the separate steps for a longer one) answers as `fold_in`, `user_best_unseen` and
    `because` called one after the other, with and without EASE and a mask."""
    rng = np.random.default_rng(length)
    items, f = TILE + 90, 16
    factors = rng.normal(size=(items, f)) * rng.pareto(2.0, size=(items, 1))
    ease = sp.csr_matrix(
        np.where(rng.random((items, items)) < 0.03, rng.normal(size=(items, items)), 0.0).astype(np.float32)
    )
    als = ALSModel(ALSConfig(factors=f, regularization=2.0, alpha=3.0), rng.normal(size=(2, f)), factors)
    for ranker in (Ranker(als, ease, 0.6, 0.4, 5.0), Ranker(als, None, 1.0, 0.0, 5.0)):
        for mask in (None, rng.random(items) < 0.3):
            positions = rng.choice(items, length, replace=False).astype(np.int64)
            ratings = rng.integers(1, 11, length).astype(np.float32) / 2
            best, scores, because = ranker.visitor_best(positions, ratings, 10, mask)
            vector = ranker.fold_in(positions, ratings)
            expected, expected_scores = ranker.user_best_unseen(vector, positions, positions, 10, mask)
            assert best.tolist() == expected.tolist()
            np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
            assert because.tolist() == ranker.because(best, positions, ratings).tolist()
            assert set(because.tolist()) <= set(positions.tolist())


def test_because_is_the_most_similar_liked_movie() -> None:
    """Liked: rated at least the median of the ratings; for each pick the liked movie of
    highest cosine (not dot product: movie 3 is long but points elsewhere), ties to the first."""
    factors = np.array([[1, 0], [0, 1], [1, 1], [-5, 0.5], [2, 0.1], [0.2, 3]], dtype=np.float32)
    ranker = Ranker(ALSModel(ALSConfig(factors=2), factors[:1], factors), None, 1.0, 0.0, 5.0)
    positions = np.array([0, 1, 3], dtype=np.int64)
    ratings = np.array([4.0, 5.0, 1.0], dtype=np.float32)  # median 4: movies 0 and 1 are liked
    picks = np.array([4, 5, 2], dtype=np.int64)
    assert ranker.because(picks, positions, ratings).tolist() == [0, 1, 0]  # 2: a tie, the first
    assert ranker.because(picks, positions[:0], ratings[:0]).tolist() == [-1, -1, -1]
    assert ranker.because(picks[:0], positions, ratings).tolist() == []


def test_best_unseen_pads_when_the_catalog_runs_out() -> None:
    factors = np.eye(3, dtype=np.float32)
    als = ALSModel(ALSConfig(factors=3), factors[:2], factors)
    ranker = Ranker(als, None, als_weight=1.0, ease_weight=0.0, scale_max=5.0)
    history = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0]], dtype=np.float32))
    positions, scores = ranker.best_unseen(als.user_factors, history, depth=3)
    assert positions[0].tolist() == [2, -1, -1]  # only movie 2 is unrated
    assert np.isneginf(scores[0, 1:]).all()
    assert positions[1, 0] == 1
    assert sorted(positions[1].tolist()) == [0, 1, 2]
    assert ranker.best_unseen(als.user_factors, history, depth=0)[0].shape == (2, 0)


def test_popularity_charts() -> None:
    ratings = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 1, 2, 1],
            "movie_id": [10, 10, 10, 20, 20, 30],
            "rating": [3.0, 3.0, 3.0, 5.0, 5.0, 5.0],
            "timestamp": [0, 0, 86_400 * 10, 0, 86_400 * 10, 86_400 * 10],
        }
    )
    ids = np.array([10, 20, 30, 40])
    stats = movie_stats(ratings, ids, PopularityConfig(prior_weight=2.0))
    mean = ratings["rating"].mean()
    assert stats.set_index("movie_id").loc[20, "bayes_rating"] == pytest.approx((10 + 2 * mean) / 4)
    table = charts(stats, pd.Series(["Drama", "Drama|Comedy", "Comedy", "Drama"]))
    overall = table[(table.chart == "most_rated") & (table.genre == "")]
    assert overall["movie_id"].tolist() == [10, 20, 30]  # unrated 40 left out
    top = table[(table.chart == "top_rated") & (table.genre == "")]["movie_id"].tolist()
    assert top[0] == 20
    comedy = table[(table.chart == "trending") & (table.genre == "Comedy")]["movie_id"].tolist()
    assert sorted(comedy) == [20, 30]


class TestItemKNN:
    def test_neighbours_and_prediction(self, matrix: sp.csr_matrix, tmp_path: Path) -> None:
        knn = ItemKNN.fit(matrix, KNNConfig(keep=10, shrinkage=0.0))
        # neighbours of movie position 1 (id 2, an even movie) are mostly even movies
        nbrs = knn.neighbours[1][knn.neighbours[1] >= 0]
        assert len(nbrs) > 0
        assert 1 not in nbrs
        assert np.mean(nbrs % 2 == 1) > 0.7
        liked, disliked = knn.predict(np.array([1, 1]), np.array([3, 2]), matrix)
        assert liked > disliked
        knn.save(tmp_path)
        again = ItemKNN.load(tmp_path)
        np.testing.assert_array_equal(
            again.predict(np.array([1]), np.array([3]), matrix),
            knn.predict(np.array([1]), np.array([3]), matrix),
        )

    def test_unknown_user_and_movie_get_baselines(self, matrix: sp.csr_matrix) -> None:
        knn = ItemKNN.fit(matrix, KNNConfig())
        pred = knn.predict(np.array([-1, 0]), np.array([0, -1]), matrix)
        assert pred[0] == pytest.approx(knn.mean + knn.item_bias[0], abs=1e-5)
        assert pred[1] == pytest.approx(knn.mean + knn.user_bias[0], abs=1e-5)


def test_knn_prediction_matches_its_definition(matrix: sp.csr_matrix) -> None:
    """The compiled kernel against the formula, pair by pair in plain Python."""
    config = KNNConfig(keep=12, neighbours=3)
    knn = ItemKNN.fit(matrix, config)
    rng = np.random.default_rng(5)
    users = rng.integers(-1, matrix.shape[0], 200)
    items = rng.integers(-1, matrix.shape[1], 200)
    got = knn.predict(users, items, matrix)
    # Rows whose column indices are not sorted give the same predictions.
    unsorted = matrix.copy()
    for row in range(unsorted.shape[0]):
        lo, hi = unsorted.indptr[row], unsorted.indptr[row + 1]
        unsorted.indices[lo:hi] = unsorted.indices[lo:hi][::-1].copy()
        unsorted.data[lo:hi] = unsorted.data[lo:hi][::-1].copy()
    unsorted.has_sorted_indices = False
    np.testing.assert_array_equal(knn.predict(users, items, unsorted), got)
    dense = matrix.toarray()
    with_neighbours = 0
    for user, item, value in zip(users, items, got, strict=True):
        user_bias = knn.user_bias[user] if user >= 0 else 0.0
        base = knn.mean + user_bias + (knn.item_bias[item] if item >= 0 else 0.0)
        total = weighted = 0.0
        if user >= 0 and item >= 0:
            rated = [
                (j, s)
                for j, s in zip(knn.neighbours[item], knn.similarities[item], strict=True)
                if j >= 0 and s > 0 and dense[user, j] != 0
            ][: config.neighbours]
            for j, s in rated:
                total += s
                weighted += s * (dense[user, j] - knn.mean - user_bias - knn.item_bias[j])
        expected = base + (weighted / total if total else 0.0)
        assert value == pytest.approx(expected, abs=1e-4)
        with_neighbours += total > 0
    assert with_neighbours > 100  # most pairs really go through the neighbourhood


def test_predictor_blend_round_trip(matrix: sp.csr_matrix, tmp_path: Path) -> None:
    config = PredictorConfig(
        mf=RatingConfig(factors=4, iterations=5), knn=KNNConfig(keep=10), min_blend_ratings=10
    )
    predictor = RatingPredictor.fit(matrix, config, (0.5, 5.0))
    assert predictor.knn is not None
    assert predictor.weights[1] != 0
    predictor.save(tmp_path)
    again = RatingPredictor.load(tmp_path)
    users, items = np.array([1, 2, -1]), np.array([3, 4, 5])
    np.testing.assert_allclose(again.predict(users, items, matrix), predictor.predict(users, items, matrix))
    assert (
        (predictor.predict(users, items, matrix) >= 0.5) & (predictor.predict(users, items, matrix) <= 5)
    ).all()


def test_predictor_serves_mf_alone_on_little_data(matrix: sp.csr_matrix) -> None:
    predictor = RatingPredictor.fit(
        matrix, PredictorConfig(mf=RatingConfig(factors=4, iterations=3)), (0.5, 5.0)
    )
    assert predictor.knn is None  # 720 ratings: too few held out to trust blend weights
    np.testing.assert_allclose(
        predictor.predict(np.array([1]), np.array([3]), matrix),
        predictor.mf.predict(np.array([1]), np.array([3])),
    )


def test_drift_offset() -> None:
    day = 86_400
    ratings = pd.DataFrame({"rating": [2.0, 2.0, 4.0, 4.0], "timestamp": [0, day, 100 * day, 101 * day]})
    assert drift_offset(ratings, 10) == pytest.approx(4.0 - 3.0)
    assert drift_offset(ratings, None) == 0.0


def test_predictor_uses_the_large_data_settings_above_the_threshold(matrix: sp.csr_matrix) -> None:
    config = PredictorConfig(
        mf=RatingConfig(factors=6, iterations=2),
        mf_large=RatingConfig(factors=3, iterations=2),
        large_ratings=100,
    )
    assert RatingPredictor.fit(matrix, config, (0.5, 5.0)).mf.user_factors.shape[1] == 3
    config = config.model_copy(update={"large_ratings": 10_000})
    assert RatingPredictor.fit(matrix, config, (0.5, 5.0)).mf.user_factors.shape[1] == 6


def test_predictor_predict_for_a_history_matches_the_trained_user(matrix: sp.csr_matrix) -> None:
    config = PredictorConfig(
        mf=RatingConfig(factors=4, iterations=8), knn=KNNConfig(keep=10), min_blend_ratings=10
    )
    predictor = RatingPredictor.fit(matrix, config, (0.5, 5.0))
    row = matrix[1]
    items = np.arange(40)
    trained = predictor.predict(np.full(40, 1), items, matrix)
    folded = predictor.predict_for(row.indices, row.data, items)
    assert np.abs(trained - folded).max() < 0.3
    assert np.corrcoef(trained, folded)[0, 1] > 0.9
    # and the history matters: a user who loves the odd movies gets them predicted higher
    lover = predictor.predict_for(np.arange(0, 20, 2), np.full(10, 5.0), np.array([20, 21]))
    assert lover[0] > lover[1]
