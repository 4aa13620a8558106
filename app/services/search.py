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

Tiers 5 and 6 need a query of at least three letters or digits: for "e" or "th" (a search box
as the user types) every title would match.
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
_TRAILING_ARTICLE = re.compile(  # any case: folded titles, and titles as written (`readable`)
    r"^(.*), (" + "|".join(sorted({a for line in _ARTICLES for a in line.split()})) + r")$",
    re.IGNORECASE,
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
_TRAILING_ALIAS = re.compile(r"\s*\([^()]*\)\s*$")
_ALIAS = re.compile(r"\(([^()]*)\)")  # an alternative title, in parentheses
_AKA = re.compile(r"^a\.?k\.?a\.?\s+")
_WORD = re.compile(r"\w+")
_PART_OF_WORD = 3  # the fewest letters and digits a query needs for tiers 5 and 6
_YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)\b\)?")  # a release year, maybe in parentheses


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a title or query."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().translate(_PLAIN)


def readable(title: str) -> str:
    """A title as a sentence would name it: its aliases dropped and its article in front
    ("Usual Suspects, The" -> "The Usual Suspects", "Seven (a.k.a. Se7en)" -> "Seven",
    "(500) Days of Summer" as it is)."""
    main = title
    while (shorter := _TRAILING_ALIAS.sub("", main)) != main and shorter:
        main = shorter
    return _article_first(main.strip())


def _article_first(name: str) -> str:
    """'matrix, the' -> 'the matrix'; "Homme, L'" -> "L'Homme"; other names as they are."""
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
    spaced: str  # the title's words, each with a space before and after: " matrix the "
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
        spaced = f" {' '.join(words)} "
        return cls(text, tuple(names), spaced, "".join(words), frozenset(bounds))

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
    # The words as `Title.spaced` holds them whole (" word ") and as a word's start (" word"):
    # each test is one substring search in C.
    whole: tuple[str, ...]
    starts: tuple[str, ...]

    @classmethod
    def of(cls, query: str) -> Query:
        text = fold(query).strip()
        words = tuple(_WORD.findall(text))
        whole = tuple(f" {word} " for word in words)
        return cls(text, words, "".join(words), whole, tuple(f" {word}" for word in words))

    def tier(self, title: Title) -> int | None:
        """The tier of `title` for this query (see the module's docstring); None: no match."""
        if not self.text:
            return None
        by_words = self.word_tier(title)
        return by_words if by_words is not None else self.part_tier(title)

    def word_tier(self, title: Title) -> int | None:
        """Tiers 0-4, which need every query word to start a word of the title (a name that
        starts with the query starts with its words)."""
        if not all(start in title.spaced for start in self.starts):
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
        if not self.words:
            return None
        return 3 if all(word in title.spaced for word in self.whole) else 4

    def part_tier(self, title: Title) -> int | None:
        """Tiers 5 and 6, for a query of at least _PART_OF_WORD letters and digits."""
        if self.words and len(self.squashed) < _PART_OF_WORD:
            return None
        if self.squashed and title.has_run(self.squashed):
            return 5
        return 6 if self.text in title.text else None


class TitleIndex:
    """A catalog's titles, searched by `matches`: candidates are found by scanning all the
    titles at once (`_Lines`), and only they are ranked by `Query.tier`."""

    def __init__(self, titles: list[str], years: list[int | None] | None = None):
        self._titles = [Title.of(title) for title in titles]
        self._texts = _Lines([title.text for title in self._titles])
        self._spaced = _Lines([title.spaced for title in self._titles])
        self._squashed = _Lines([title.squashed for title in self._titles])
        self._by_year: dict[int, list[int]] = {}
        for position, year in enumerate(years or []):
            if year is not None:
                self._by_year.setdefault(year, []).append(position)

    def matches(self, query: str) -> list[tuple[int, int]]:
        """(tier, position) of every title the query matches, in no particular order.

        A year in the query ("the matrix 1999", "king kong (1933)") may also name the movie's
        release year: a movie of that year matches with the tier of the rest of the query,
        when that is better than the whole query's ("2001" still finds "2001: A Space
        Odyssey" by its title, and no year alone lists that year's movies)."""
        best = {position: tier for tier, position in self._matches(query)}
        for found in _YEAR.finditer(query):
            year, rest = int(found.group(1)), query[: found.start()] + " " + query[found.end() :]
            for tier, position in self._matches(rest, among=self._by_year.get(year, [])):
                if tier < best.get(position, tier + 1):
                    best[position] = tier
        return [(tier, position) for position, tier in best.items()]

    def _matches(self, query: str, among: list[int] | None = None) -> list[tuple[int, int]]:
        """(tier, position) of the titles the query matches, of all or only those `among`."""
        wanted = Query.of(query)
        if not wanted.text:
            return []
        if among is not None:
            ranked = [(wanted.tier(self._titles[position]), position) for position in among]
            return [(tier, position) for tier, position in ranked if tier is not None]
        # Tiers 0-4 need every query word to start a word of the title; 5 and 6 the squashed
        # query in the squashed title, or the query in the title (see Query).
        by_words: set[int] = set()
        if wanted.words:
            rarest = min(wanted.starts, key=self._spaced.count)
            by_words.update(
                position
                for position in self._spaced.holding(rarest)
                if all(start in self._spaced.lines[position] for start in wanted.starts)
            )
        else:  # no words ("!"): a name may still start with it
            by_words = self._texts.holding(wanted.text)
        by_parts: set[int] = set()
        if len(wanted.squashed) >= _PART_OF_WORD or not wanted.words:
            by_parts = self._texts.holding(wanted.text)
            if wanted.squashed:
                by_parts |= self._squashed.holding(wanted.squashed)
        found = []
        for position in by_words:
            tier = wanted.tier(self._titles[position])
            if tier is not None:
                found.append((tier, position))
        for position in by_parts - by_words:
            tier = wanted.part_tier(self._titles[position])
            if tier is not None:
                found.append((tier, position))
        return found


class _Lines:
    """Lines of text searched for a substring: a rare one by `str.find` over all of them
    joined in one string (C speed, a Python step per occurrence only), a common one line by
    line (a Python step per line, but no more)."""

    _SEPARATOR = "\x00"

    def __init__(self, lines: list[str]):
        self.lines = lines
        self._joined = self._SEPARATOR.join(lines)
        self._starts, at = [], 0
        for line in lines:
            self._starts.append(at)
            at += len(line) + len(self._SEPARATOR)

    def count(self, needle: str) -> int:
        return self._joined.count(needle)

    def holding(self, needle: str) -> set[int]:
        """The lines in which `needle` occurs."""
        if self.count(needle) * 8 > len(self.lines):
            return {line for line, text in enumerate(self.lines) if needle in text}
        lines: set[int] = set()
        at = self._joined.find(needle)
        while at >= 0:
            line = bisect_right(self._starts, at) - 1
            lines.add(line)
            following = self._starts[line + 1] if line + 1 < len(self._starts) else len(self._joined)
            at = self._joined.find(needle, max(following, at + 1))
        return lines
