"""Title search on real MovieLens and Netflix title shapes (app.services.search)."""

from __future__ import annotations

import pytest

from app.services.search import Query, Title, TitleIndex, readable

TITLES = [
    "Matrix, The",
    "Matrix Reloaded, The",
    "Animatrix, The",
    "Misérables, Les",
    "Homme qui aimait les femmes, L'",
    "Léon: The Professional (a.k.a. The Professional) (Léon)",
    "Professional, The (Le professionnel)",
    "Amelie (Fabuleux destin d'Amélie Poulain, Le)",
    "Toy Story",
    "Toy Story 2",
    "Lord of the Rings: The Fellowship of the Ring, The",
    "Harry Potter and the Chamber of Secrets",
    "Spider-Man",
    "Amazing Spider-Man, The",
    "Napoleon Dynamite",
    "Miracle on 34th Street",
    "WALL·E",
    "Walled In",
    "The Rise and Fall of ECW",  # Netflix keeps the article in front
    "!Women Art Revolution",
    "Vitelloni, I",
    "Babette's Feast (Babettes gæstebud)",
    "M. Hulot\u2019s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les)",
    "8 1/2 (8½)",
]


@pytest.mark.parametrize(
    ("query", "title", "tier"),
    [
        ("the matrix", "Matrix, The", 0),
        ("MATRIX, the", "Matrix, The", 0),
        ("les miserables", "Misérables, Les", 0),
        ("l'homme qui aimait les femmes", "Homme qui aimait les femmes, L'", 0),
        ("the professional", "Léon: The Professional (a.k.a. The Professional) (Léon)", 0),
        ("leon", "Léon: The Professional (a.k.a. The Professional) (Léon)", 0),
        ("the professional", "Professional, The (Le professionnel)", 0),
        ("le fabuleux destin d'amelie poulain", "Amelie (Fabuleux destin d'Amélie Poulain, Le)", 0),
        ("the rise and fall of ecw", "The Rise and Fall of ECW", 0),
        ("i vitelloni", "Vitelloni, I", 0),
        ("babettes gaestebud", "Babette's Feast (Babettes gæstebud)", 0),
        (
            "les vacances de monsieur hulot",
            "M. Hulot\u2019s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les)",
            0,
        ),
        (
            "m. hulot's holiday",
            "M. Hulot\u2019s Holiday (Mr. Hulot's Holiday) (Vacances de Monsieur Hulot, Les)",
            0,
        ),
        ("8 1/2", "8 1/2 (8½)", 0),
        ("toy story", "Toy Story 2", 1),
        ("the matrix", "Matrix Reloaded, The", 1),
        ("lord of the rings", "Lord of the Rings: The Fellowship of the Ring, The", 1),
        ("toy sto", "Toy Story", 2),
        ("fellowship rings lord", "Lord of the Rings: The Fellowship of the Ring, The", 3),
        ("women revolution", "!Women Art Revolution", 3),
        ("pot harry", "Harry Potter and the Chamber of Secrets", 4),
        ("spiderman", "Amazing Spider-Man, The", 5),
        ("walle", "WALL·E", 5),
        ("wall-e", "WALL·E", 3),
        ("leon", "Napoleon Dynamite", 6),
        ("atrix", "Matrix, The", 6),
        ("ma", "Matrix, The", 2),  # as the user types
        ("ma", "Amazing Spider-Man, The", 4),
        ("leo", "Napoleon Dynamite", 6),
        ("le", "Napoleon Dynamite", None),  # too short for part of a word: nearly every title
        ("leon", "Miracle on 34th Street", None),  # "miracLE ON" runs across a word boundary
        ("wall-e", "Walled In", None),
        ("matrix 2", "Matrix Reloaded, The", None),
        ("", "Matrix, The", None),
        ("   ", "Matrix, The", None),
    ],
)
def test_tiers(query: str, title: str, tier: int | None) -> None:
    assert Query.of(query).tier(Title.of(title)) == tier


@pytest.mark.parametrize(
    "query",
    [
        "the matrix",
        "matrix",
        "atrix",
        "leon",
        "spiderman",
        "the",
        "e",
        "ma",
        "toy sto",
        "rings the",
        "!",
        "a.k.a.",
    ],
)
def test_index_finds_every_title_the_query_matches(query: str) -> None:
    """The index only ranks the candidates its scan finds: they must be every match."""
    index = TitleIndex(TITLES)
    tiers = [Query.of(query).tier(Title.of(title)) for title in TITLES]
    expected = {(tier, position) for position, tier in enumerate(tiers) if tier is not None}
    assert set(index.matches(query)) == expected


def test_the_matrix_ranks_the_film_before_its_sequels_and_namesakes() -> None:
    index = TitleIndex(TITLES)
    ranked = [TITLES[p] for _, p in sorted(index.matches("the matrix"))]
    assert ranked == ["Matrix, The", "Matrix Reloaded, The"]
    ranked = [TITLES[p] for _, p in sorted(index.matches("matrix"))]
    assert ranked[:2] == ["Matrix, The", "Matrix Reloaded, The"]
    assert ranked[-1] == "Animatrix, The"  # a part of a word only


def test_a_year_in_the_query_may_name_the_release_year() -> None:
    titles = ["King Kong", "King Kong", "2001: A Space Odyssey", "Matrix, The", "Memento"]
    index = TitleIndex(titles, [1933, 2005, 1968, 1999, 2001])

    def ranked(query: str) -> list[tuple[int, int]]:
        return sorted(index.matches(query))

    assert ranked("king kong 1933") == [(0, 0)]  # the rest is the whole title: tier 0
    assert ranked("King Kong (2005)") == [(0, 1)]
    assert ranked("the matrix 1999") == [(0, 3)]
    assert ranked("the matrix 2003") == []
    assert ranked("king kong") == [(0, 0), (0, 1)]
    assert ranked("2001") == [(1, 2)]  # by its title only: a year alone lists nothing


@pytest.mark.parametrize(
    ("title", "read"),
    [
        ("Usual Suspects, The", "The Usual Suspects"),
        ("Seven (a.k.a. Se7en)", "Seven"),
        ("Léon: The Professional (a.k.a. The Professional) (Léon)", "Léon: The Professional"),
        ("Misérables, Les", "Les Misérables"),
        ("Homme qui aimait les femmes, L'", "L'Homme qui aimait les femmes"),
        ("Boot, Das (Boat, The)", "Das Boot"),
        ("(500) Days of Summer", "(500) Days of Summer"),
        ("(Untitled)", "(Untitled)"),
        ("Toy Story", "Toy Story"),
    ],
)
def test_readable(title: str, read: str) -> None:
    assert readable(title) == read
