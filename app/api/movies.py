"""Catalog routes: one movie, title search, genres, charts and similar movies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.common import (
    NOT_FOUND,
    FiltersDep,
    GenreQuery,
    JSONRoute,
    KQuery,
    YearFrom,
    YearTo,
    check_genre,
    render,
    rendered,
)
from app.deps import ServicesDep
from app.schemas import Genre, GenreList, Movie, MovieList, MoviePage, SimilarMovies
from app.services.catalog import Filters

router = APIRouter(route_class=JSONRoute, tags=["movies"])
# Lookups over precomputed tables are constant time and run on the event loop, their answers
# kept rendered by request (Services.rendered); title search scans the catalog's titles and
# stays a plain `def` (thread pool).
MoviePath = Annotated[int, Path(ge=0, le=2**63 - 1, description="The dataset's own movie id.", examples=[1])]


@router.get(
    "/movies/{movie_id}",
    response_model=Movie,
    responses=NOT_FOUND,
    summary="One movie",
    description="A movie's card: title, year, genres and its IMDb and TMDB ids where the dataset has them.",
)
async def get_movie(movie_id: MoviePath, services: ServicesDep) -> dict:
    return services.catalog.card(services.catalog.position(movie_id))


@router.get(
    "/movies",
    response_model=MoviePage,
    summary="Search the catalog by title",
    description="Words in any order, case and accents ignored; articles moved to the end by the "
    'dataset ("Matrix, The") and alternative titles in parentheses match too. Ranked by how well the '
    "title matches (the title itself, then titles starting with the query, then titles holding all "
    "its words, then parts of words), then by popularity; `total` counts the matches before paging.",
)
def search_movies(
    services: ServicesDep,
    query: Annotated[
        str,
        Query(
            max_length=200,
            description="Title words, in any order; case and accents ignored, and MovieLens's "
            'moved articles read in front ("the matrix" finds "Matrix, The"); a year may name the '
            'release year ("king kong 1933"). Ranked: the title itself, titles starting with the '
            "query, titles holding all its words, then parts of words; then by popularity.",
            examples=["the matrix"],
        ),
    ] = "",
    genre: GenreQuery = None,
    year_from: YearFrom = None,
    year_to: YearTo = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Matches to skip.")] = 0,
) -> dict:
    check_genre(services.catalog, genre)
    filters = Filters(genre, year_from, year_to)
    total, positions = services.catalog.search(query, filters, limit, offset)
    items = [services.catalog.card(p) for p in positions]
    return {"query": query, "total": total, "limit": limit, "offset": offset, "items": items}


@router.get(
    "/genres",
    response_model=GenreList,
    summary="Genres with their number of movies",
    description="The names the `genre` filters accept (in any case).",
)
async def list_genres(services: ServicesDep) -> dict:
    return {"items": [Genre(name=name, movies=count) for name, count in services.catalog.genres()]}


@router.get(
    "/trending",
    response_model=MovieList,
    summary="Movies with the most recent activity",
    description="Ranked by ratings in the dataset's last year, each weighted by its age (half-life 30 "
    "days, counted back from the dataset's newest rating); the score is that weighted count. "
    "Filters apply before the cut to k.",
)
async def trending(
    services: ServicesDep,
    k: KQuery = 10,
    genre: GenreQuery = None,
    year_from: YearFrom = None,
    year_to: YearTo = None,
) -> Response:
    filters = Filters(genre, year_from, year_to)
    key = ("trending", k, filters)
    if (answer := rendered(services.rendered, key)) is not None:
        return answer
    check_genre(services.catalog, genre)
    chart = services.catalog.chart("trending", filters, k)
    return render({"items": [services.catalog.card(p, s) for p, s in chart]}, services.rendered, key)


@router.get(
    "/top-rated",
    response_model=MovieList,
    summary="Best rated movies (Bayesian average)",
    description="Ranked by the mean rating pulled towards the global mean by a prior worth the median "
    "movie's number of ratings, so a movie rated 5 by two people does not top the chart; the score "
    "is that average. Filters apply before the cut to k.",
)
async def top_rated(
    services: ServicesDep,
    k: KQuery = 10,
    genre: GenreQuery = None,
    min_ratings: Annotated[
        int, Query(ge=0, le=1_000_000, description="Only movies with this many ratings.")
    ] = 0,
) -> Response:
    key = ("top_rated", k, genre, min_ratings)
    if (answer := rendered(services.rendered, key)) is not None:
        return answer
    check_genre(services.catalog, genre)
    chart = services.catalog.chart("top_rated", Filters(genre), k, min_ratings)
    return render({"items": [services.catalog.card(p, s) for p, s in chart]}, services.rendered, key)


@router.get(
    "/movies/{movie_id}/similar",
    response_model=SimilarMovies,
    responses=NOT_FOUND,
    summary="Similar movies",
    description="The movie and its nearest movies by cosine between ALS movie factors (precomputed "
    "at build time); the score is the cosine. Filters apply before the cut to k.",
)
async def similar(
    movie_id: MoviePath, services: ServicesDep, filters: FiltersDep, k: KQuery = 10
) -> Response:
    key = ("similar", movie_id, k, filters)
    if (answer := rendered(services.rendered, key)) is not None:
        return answer
    position = services.catalog.position(movie_id)  # 404 for an unknown id
    check_genre(services.catalog, filters.genre)
    items = services.recommender.similar(position, k, filters)
    return render({"movie": services.catalog.card(position), "items": items}, services.rendered, key)
