"""Request and response models: every bound here becomes a 422 that names the field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict

# Strict: a JSON true/false or "1" is not an id, and a number is not a time.
MovieId = Annotated[
    int, Field(strict=True, ge=0, le=2**63 - 1, description="The dataset's own movie id.", examples=[1])
]
UserId = Annotated[
    int, Field(strict=True, ge=0, le=2**63 - 1, description="The client's own user id.", examples=[1])
]


def _iso_only(value: object) -> object:
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date-time string such as 2024-05-01T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]
K = Annotated[int, Field(ge=1, le=100, description="How many items to return (1-100).")]


class Movie(BaseModel):
    movie_id: int = Field(examples=[1])
    title: str = Field(examples=["Toy Story"])
    year: int | None = Field(examples=[1995])
    genres: list[str] = Field(examples=[["Adventure", "Animation"]])
    imdb_id: int | None = Field(examples=[114709])
    tmdb_id: int | None = Field(examples=[862])


class MovieRef(BaseModel):
    movie_id: int = Field(examples=[260])
    title: str = Field(examples=["Star Wars: Episode IV - A New Hope"])


class ScoredMovie(Movie):
    score: float = Field(
        description="Ranking score; higher is better (comparable within one list).", examples=[0.6651]
    )


class Recommended(ScoredMovie):
    because: MovieRef | None = Field(None, description="The watched movie this pick is most similar to.")


class MovieList(BaseModel):
    items: list[ScoredMovie]


class MoviePage(BaseModel):
    query: str = Field(examples=["toy story"])
    total: int = Field(description="Matches before paging.", examples=[3])
    limit: int = Field(examples=[20])
    offset: int = Field(examples=[0])
    items: list[Movie]


class Genre(BaseModel):
    name: str = Field(examples=["Comedy"])
    movies: int = Field(description="Movies of the catalog in this genre.", examples=[3756])


class GenreList(BaseModel):
    items: list[Genre]


class SimilarMovies(BaseModel):
    movie: Movie
    items: list[ScoredMovie]


class UserRecommendations(BaseModel):
    user_id: int = Field(examples=[1])
    known_user: bool = Field(
        description="False when the user has no history: the list is the fallback.", examples=[True]
    )
    fallback: str | None = Field(
        description="Which chart served an unknown user, else null.", examples=[None]
    )
    items: list[Recommended]


class BecauseRow(BaseModel):
    because: Movie
    items: list[ScoredMovie]


class BecauseYouWatched(BaseModel):
    user_id: int = Field(examples=[1])
    rows: list[BecauseRow]


class HomeRow(BaseModel):
    title: str = Field(examples=["Top picks for you"])
    kind: str = Field(
        examples=["for_you"], description="for_you, because_you_watched, trending, top_rated, ..."
    )
    items: list[Recommended] = Field(description="`because` is set on the for_you row's picks, else null.")


class HomePage(BaseModel):
    user_id: int = Field(examples=[1])
    rows: list[HomeRow]


class VisitorRating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    movie_id: MovieId
    rating: float = Field(
        strict=True,
        ge=0,
        le=10,
        description="On the dataset's rating scale (/health gives it).",
        examples=[4.5],
    )


class VisitorRequest(BaseModel):
    """Movies a visitor rated, or simply liked; at least one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"ratings": [{"movie_id": 1, "rating": 5}], "liked": [260], "k": 10}],
            # at least one movie, in either list (checked by the validator below)
            "anyOf": [
                {"required": ["ratings"], "properties": {"ratings": {"minItems": 1}}},
                {"required": ["liked"], "properties": {"liked": {"minItems": 1}}},
            ],
        },
    )

    ratings: list[VisitorRating] = Field(default_factory=list, max_length=500)
    liked: list[MovieId] = Field(
        default_factory=list, max_length=500, description="Movies liked (a top rating).", examples=[[260]]
    )
    k: K = 10
    genre: str | None = Field(
        None, max_length=100, description="Only movies of this genre (see /genres).", examples=["Comedy"]
    )
    year_from: int | None = Field(
        None, ge=1800, le=2200, description="Only movies released in or after this year.", examples=[1990]
    )
    year_to: int | None = Field(
        None, ge=1800, le=2200, description="Only movies released in or before this year.", examples=[1999]
    )
    exclude: list[MovieId] = Field(
        default_factory=list, max_length=1000, description="Movie ids never to return.", examples=[[1196]]
    )

    @model_validator(mode="after")
    def _needs_movies(self) -> VisitorRequest:
        if not self.ratings and not self.liked:
            raise ValueError("give at least one movie in 'ratings' or 'liked'")
        return self


class VisitorRecommendations(BaseModel):
    items: list[Recommended]


@with_config(ConfigDict(extra="forbid"))
class PredictionPair(TypedDict):
    # A TypedDict, not a model: 10,000 of them validate about 2.5x faster (no instances).
    user_id: UserId
    movie_id: MovieId


class PredictionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"pairs": [{"user_id": 1, "movie_id": 1}, {"user_id": 99999, "movie_id": 2}]}]
        },
    )

    pairs: list[PredictionPair] = Field(min_length=1, max_length=10_000)


class Prediction(BaseModel):
    user_id: int = Field(examples=[1])
    movie_id: int = Field(examples=[1])
    rating: float = Field(description="Predicted rating on the dataset's scale.", examples=[4.7016])
    known_user: bool = Field(
        description="False: predicted from the movie's bias and the mean.", examples=[True]
    )
    known_movie: bool = Field(
        description="False: predicted from the user's bias and the mean.", examples=[True]
    )


class PredictionResponse(BaseModel):
    predictions: list[Prediction]


class NewRating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    movie_id: MovieId
    rating: float = Field(
        strict=True, description="On the dataset's rating scale (see /health).", examples=[4.5]
    )
    rated_at: Timestamp | None = Field(
        None,
        description="When it was rated (ISO 8601); now when left out.",
        examples=["2026-11-23T12:00:00Z"],
    )


class RatingsBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ratings": [{"movie_id": 1, "rating": 4.5}]}]}
    )

    ratings: list[NewRating] = Field(min_length=1, max_length=500)


class StoredRatingOut(BaseModel):
    movie_id: int = Field(examples=[1])
    rating: float = Field(examples=[4.5])
    rated_at: datetime = Field(examples=["2026-11-23T12:00:00Z"])


class StoredRatings(BaseModel):
    user_id: int = Field(examples=[42])
    items: list[StoredRatingOut]


class RatingsPage(BaseModel):
    user_id: int = Field(examples=[42])
    total: int = Field(description="Stored ratings before paging.", examples=[2])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    items: list[StoredRatingOut]


class NewEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    movie_id: MovieId
    kind: Literal["view", "click", "play", "finish"] = Field(examples=["view"])
    at: Timestamp | None = Field(
        None, description="When it happened (ISO 8601); now when left out.", examples=["2026-11-23T12:00:00Z"]
    )


class EventsBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"events": [{"movie_id": 1, "kind": "view"}]}]}
    )

    events: list[NewEvent] = Field(min_length=1, max_length=1000)


class EventsStored(BaseModel):
    user_id: int = Field(examples=[42])
    stored: int = Field(description="Events stored.", examples=[1])


class ModelInfo(BaseModel):
    version: str = Field(description="The bundle's directory name.", examples=["20261123T153744502241Z"])
    dataset: str = Field(examples=["ml-latest-small"])
    trained_at: str = Field(examples=["2026-11-23T15:37:44.502241+00:00"])
    format_version: int = Field(description="The bundle format (training.bundle).", examples=[2])
    code_version: str = Field(description="The commit that built it.", examples=["10f65dd"])
    counts: dict[str, int] = Field(
        examples=[{"ratings": 100836, "users": 610, "movies": 9742, "rated_movies": 9724, "signals": 0}]
    )
    rating_scale: list[float] = Field(description="Lowest and highest rating.", examples=[[0.5, 5.0]])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    model: ModelInfo


class Reloaded(BaseModel):
    previous: str = Field(
        description="The bundle version served before.", examples=["20261122T101500000000Z"]
    )
    version: str = Field(description="The bundle version served now.", examples=["20261123T153744502241Z"])
    dataset: str = Field(examples=["ml-latest-small"])


class ErrorBody(BaseModel):
    error: str = Field(examples=["unknown_movie"])
    detail: str = Field(examples=["movie 123456 is not in the catalog"])
