"""Title search: matching what a person types against the catalog's titles.

MovieLens moves a leading article to the end ("Matrix, The", "Misérables, Les") and adds
alternative titles in parentheses ("Léon: The Professional (a.k.a. The Professional) (Léon)",
"Amelie (Fabuleux destin d'Amélie Poulain, Le)"); people type "the matrix", "les miserables",
"leon", "fellowship rings" or "spiderman". Case and accents are ignored, a title's names are
also read with their article back in front, and the query's words may come in any order.

A match falls in the first of these tiers that holds (the lower, the better):

0. the query is one of the title's names (the title, its main part or an alias, each as
   written and with its article in front);
1. a name starts with the query, which ends at a word boundary ("toy story" -> "Toy Story 2");
2. a name starts with the query, its last word cut short ("toy sto");
3. every word of the query is a word of the title, in any order;
4. every word of the query starts a word of the title ("harry pot");
5. the query's words, run together, are whole words of the title run together ("spiderman"
   -> "Spider-Man", but "leon" not -> "Miracle on");
6. the query is part of the title's text ("leon" -> "Napoleon Dynamite").
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

# The articles MovieLens moves behind a title ("Matrix, The", "Misérables, Les", "Boot, Das",
# "Vitelloni, I"), in the languages of its titles.
_ARTICLES = (
    "the a an",  # English
    "le la les l' un une",  # French
    "el la los las un una",  # Spanish
    "il lo la i gli l' un una",  # Italian
    "o a os as um uma",  # Portuguese
    "der die das ein eine",  # German
    "de het een",  # Dutch
    "den det de en ett",  # Scandinavian
)
_TRAILING_ARTICLE = re.compile(
    r"^(.*), (" + "|".join(sorted({a for line in _ARTICLES for a in line.split()})) + r")$"
)
# Letters that Unicode does not decompose into a base letter and an accent, and punctuation
# typed otherwise on a keyboard.
_PLAIN = str.maketrans(
    {
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "ð": "d",
        "đ": "d",
        "þ": "th",
        "ł": "l",
        "\u0131": "i",  # dotless i
        "\u2019": "'",  # right single quotation mark (MovieLens: "M. Hulot\u2019s Holiday")
        "\u2018": "'",  # left single quotation mark
        "\u2044": "/",  # fraction slash, from "½"
    }
)
_ALIAS = re.compile(r"\(([^()]*)\)")  # an alternative title, in parentheses
_AKA = re.compile(r"^a\.?k\.?a\.?\s+")
_WORD = re.compile(r"\w+")
_YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)\b\)?")  # a release year, maybe in parentheses


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a title or query."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().translate(_PLAIN)


def _article_first(name: str) -> str:
    """'matrix, the' -> 'the matrix'; "homme, l'" -> "l'homme"; other names as they are."""
    found = _TRAILING_ARTICLE.match(name)
    if found is None:
        return name
    rest, article = found.groups()
    return article + rest if article.endswith("'") else f"{article} {rest}"


@dataclass(frozen=True)
class Title:
    """A title's folded forms, computed once per catalog."""

    text: str  # the whole title, folded
    names: tuple[str, ...]  # the title, its main part and its aliases, also with the article in front
    words: frozenset[str]
    squashed: str  # the words run together
    bounds: frozenset[int]  # where words start and end in `squashed`

    @classmethod
    def of(cls, title: str) -> Title:
        text = fold(title).strip()
        main = _ALIAS.sub("", text).strip()
        aliases = [_AKA.sub("", alias.strip()) for alias in _ALIAS.findall(text)]
        names: list[str] = []
        for name in (text, main, *aliases):
            for form in (name, _article_first(name)):
                if form and form not in names:
                    names.append(form)
        words = _WORD.findall(text)
        bounds, end = {0}, 0
        for word in words:
            end += len(word)
            bounds.add(end)
        return cls(text, tuple(names), frozenset(words), "".join(words), frozenset(bounds))

    def has_run(self, squashed: str) -> bool:
        """Whether `squashed` is whole words of this title run together."""
        at = self.squashed.find(squashed)
        while at >= 0:
            if at in self.bounds and at + len(squashed) in self.bounds:
                return True
            at = self.squashed.find(squashed, at + 1)
        return False


@dataclass(frozen=True)
class Query:
    text: str
    words: tuple[str, ...]
    squashed: str

    @classmethod
    def of(cls, query: str) -> Query:
        text = fold(query).strip()
        words = tuple(_WORD.findall(text))
        return cls(text, words, "".join(words))

    def tier(self, title: Title) -> int | None:
        """The tier of `title` for this query (see the module's docstring); None: no match."""
        if not self.text:
            return None
        # Cheap test first: whatever the tier, the query is in the title's text, or every
        # query word is, or the squashed query is in the squashed title.
        if (
            self.text not in title.text
            and not (self.words and all(word in title.text for word in self.words))
            and not (self.squashed and self.squashed in title.squashed)
        ):
            return None
        if self.text in title.names:
            return 0
        cut_short = False
        for name in title.names:
            if name.startswith(self.text):
                end = len(self.text)
                if end == len(name) or not name[end].isalnum():
                    return 1
                cut_short = True
        if cut_short:
            return 2
        if self.words and all(word in title.words for word in self.words):
            return 3
        if self.words and all(any(w.startswith(word) for w in title.words) for word in self.words):
            return 4
        if self.squashed and title.has_run(self.squashed):
            return 5
        if self.text in title.text:
            return 6
        return None


class TitleIndex:
    """A catalog's titles, searched by `matches`. Candidates are found by scanning all the
    folded titles joined in one string (C speed), and only they are ranked by `Query.tier`;
    each title's forms (`Title`) are computed the first time it is a candidate."""

    def __init__(self, titles: list[str], years: list[int | None] | None = None):
        self._raw = titles
        self._years = years or [None] * len(titles)
        self._forms: list[Title | None] = [None] * len(titles)
        self._texts = [fold(title).strip() for title in titles]
        self._text, self._text_starts = _joined(self._texts)
        self._squashed, self._squashed_starts = _joined(["".join(_WORD.findall(t)) for t in self._texts])

    def matches(self, query: str) -> list[tuple[int, int]]:
        """(tier, position) of every title the query matches, in no particular order.

        A year in the query ("the matrix 1999", "king kong (1933)") may also name the movie's
        release year: a movie of that year matches with the tier of the rest of the query,
        when that is better than the whole query's ("2001" still finds "2001: A Space
        Odyssey" by its title, and no year alone lists that year's movies)."""
        best = {position: tier for tier, position in self._matches(query)}
        for found in _YEAR.finditer(query):
            year, rest = int(found.group(1)), query[: found.start()] + " " + query[found.end() :]
            for tier, position in self._matches(rest):
                if self._years[position] == year and tier < best.get(position, tier + 1):
                    best[position] = tier
        return [(tier, position) for position, tier in best.items()]

    def _matches(self, query: str) -> list[tuple[int, int]]:
        wanted = Query.of(query)
        if not wanted.text:
            return []
        # Whatever the tier, the title holds the query, or every query word, or the squashed
        # query in its squashed form (see Query.tier): look for those, then rank them.
        candidates = _lines_with(self._text, self._text_starts, wanted.text)
        if wanted.words:
            rarest = min(wanted.words, key=self._text.count)  # str.count: C speed, no Python loop
            candidates.update(
                position
                for position in _lines_with(self._text, self._text_starts, rarest)
                if all(word in self._texts[position] for word in wanted.words)
            )
        if wanted.squashed:
            candidates |= _lines_with(self._squashed, self._squashed_starts, wanted.squashed)
        found = []
        for position in candidates:
            tier = wanted.tier(self._title(position))
            if tier is not None:
                found.append((tier, position))
        return found

    def _title(self, position: int) -> Title:
        title = self._forms[position]
        if title is None:
            title = self._forms[position] = Title.of(self._raw[position])
        return title


_SEPARATOR = "\x00"


def _joined(lines: list[str]) -> tuple[str, list[int]]:
    """The lines joined by a separator, and where each starts."""
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line) + len(_SEPARATOR)
    return _SEPARATOR.join(lines), starts


def _lines_with(joined: str, starts: list[int], needle: str) -> set[int]:
    """The lines of `joined` (see _joined) in which `needle` occurs."""
    lines: set[int] = set()
    at = joined.find(needle)
    while at >= 0:
        line = bisect_right(starts, at) - 1
        lines.add(line)
        following = starts[line + 1] if line + 1 < len(starts) else len(joined)
        at = joined.find(needle, max(following, at + 1))
    return lines
