"""Well-known facts, written for this project, shared by the search corpus and the probe sets.

Each table in playground/data/facts/*.tsv holds plain facts; the sentences built from them here are
our own words. The same facts become encyclopedia-style articles (what the offline search finds) and
questions with gold answers and aliases (what the lab asks), so "with search" can be measured
against "without search" on exactly the same knowledge.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


@dataclass(frozen=True)
class Article:
    title: str
    source: str
    text: str


@dataclass(frozen=True)
class FactQuestion:
    question: str
    answers: tuple[str, ...]
    category: str
    statement: str  # the fact as a sentence (for Is-It-Valid scoring)
    wrong: str = ""  # a plausible wrong answer of the same kind
    ids: tuple[str, ...] = field(default=())


THE = {"United Kingdom", "United States", "Netherlands", "Czech Republic", "Philippines"}


def _the(country: str) -> str:
    return f"the {country}" if country in THE else country


def _end(s: str) -> str:
    return s if s.endswith(".") else s + "."


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / "facts" / f"{name}.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _ascii(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


def _year(y: str) -> str:
    n = int(y)
    return f"around {-n} BC" if n < 0 else str(n)


def _aliases(answer: str) -> tuple[str, ...]:
    out = [answer]
    extra = {
        "Washington, D.C.": ["Washington"],
        "Kyiv": ["Kiev"],
        "United States": ["USA", "the United States of America", "America"],
        "United Kingdom": ["UK", "Britain", "Great Britain"],
        "West Germany": ["Germany"],
        "renminbi (yuan)": ["renminbi", "yuan"],
        "the Wright brothers": ["Wright brothers", "Orville and Wilbur Wright"],
        "Mount Everest": ["Everest"],
        "Nile": ["the Nile", "Nile River"],
        "Amazon": ["the Amazon", "Amazon River"],
        "Sahara": ["the Sahara", "Sahara Desert"],
    }
    out += extra.get(answer, [])
    return tuple(dict.fromkeys(out))


def _person_aliases(name: str) -> tuple[str, ...]:
    parts = name.replace(".", ". ").split()
    last = parts[-1] if parts else name
    return tuple(dict.fromkeys([name, last]))


def _pick_wrong(rows: list[dict[str, str]], key: str, i: int) -> str:
    """A plausible wrong answer: the same field of a neighbouring row that differs."""
    for j in range(1, len(rows)):
        other = rows[(i + j) % len(rows)][key]
        if other != rows[i][key]:
            return other
    return ""


@cache
def articles() -> tuple[Article, ...]:
    out: list[Article] = []
    src = "playground encyclopedia"
    for r in _rows("countries"):
        langs = (
            "official languages are"
            if " and " in r["language"] or "," in r["language"]
            else "official language is"
        )
        out.append(
            Article(
                r["name"],
                src,
                (
                    f"{_cap(_the(r['name']))} is a country in {r['continent']}. Its capital city is "
                    f"{_end(r['capital'])} People in {_the(r['name'])} pay with the {r['currency']}, and the "
                    f"{langs} {r['language']}."
                ),
            )
        )
    for r in _rows("elements"):
        out.append(
            Article(
                f"{r['name']} (element)",
                src,
                (
                    f"{r['name']} is the chemical element with atomic number {r['number']}. Chemists write it "
                    f"with the symbol {r['symbol']}. It belongs to the group of materials described as {r['kind']}."
                ),
            )
        )
    for r in _rows("planets"):
        out.append(
            Article(
                f"{r['name']} (planet)",
                src,
                (
                    f"{r['name']} is the {ORDINALS[int(r['order']) - 1]} planet from the Sun. It is a {r['kind']} "
                    f"and is {r['note']}."
                ),
            )
        )
    for r in _rows("books"):
        out.append(
            Article(
                r["title"],
                src,
                (
                    f"{r['title']} is a book by {r['author']}. It was first published in {_year(r['year'])} and is "
                    f"still widely read today."
                ),
            )
        )
    for r in _rows("worldcups"):
        final = (
            f"{r['runner_up']} finished second"
            if r["year"] == "1950"
            else f"{r['runner_up']} lost the final"
        )
        out.append(
            Article(
                f"{r['year']} FIFA World Cup",
                src,
                (
                    f"The {r['year']} FIFA World Cup took place in {r['host']}. {r['winner']} won the tournament "
                    f"and {final}."
                ),
            )
        )
    for r in _rows("people"):
        out.append(
            Article(
                r["name"],
                src,
                (
                    f"{r['name']} (born {_year(r['born'])}) was a {r['nationality']} figure in {r['field']}, "
                    f"remembered above all for {r['known_for']}."
                ),
            )
        )
    out += _place_and_thing_articles(src)
    out += _extra_articles()
    return tuple(out)


def _place_and_thing_articles(src: str) -> list[Article]:
    out: list[Article] = []
    for r in _rows("inventions"):
        out.append(
            Article(
                f"Invention of the {r['invention']}",
                src,
                (
                    f"The {r['invention']} is usually credited to {r['inventor']}, around {r['year']}."
                ),
            )
        )
    for r in _rows("landmarks"):
        out.append(
            Article(
                r["name"],
                src,
                (f"The {r['name']} stands in {r['city']}, {r['country']}. It is {r['note']}."),
            )
        )
    for r in _rows("geography"):
        out.append(Article(r["name"], src, f"{r['name']} is a {r['kind']}: {r['fact']}."))
    return out


def _extra_articles() -> list[Article]:
    src = "playground notes"
    notes = {
        "Language model": "A language model is a program that predicts the next token of a text from the tokens before it. Trained on a large amount of text, it can continue documents, and after further training on conversations it can act as an assistant.",
        "Base model": "A base model is a language model after pretraining only. It continues text the way documents on the web continue, so a question may be followed by more questions, a forum thread, or an invented answer.",
        "Instruction tuning": "Instruction tuning trains a base model on example conversations between a user and a helpful assistant, written in a chat template with special tokens that mark whose turn it is.",
        "Hallucination (language models)": "A language model hallucinates when it states something false or made up as if it were true. Models imitate the confident style of their training answers even when they do not know the answer.",
        "Tokenization": "Language models read text as tokens, pieces of words taken from a fixed vocabulary. Because a word such as strawberry may be a single token, a model does not directly see its letters, which makes counting letters hard.",
        "Retrieval-augmented generation": "Retrieval-augmented generation puts documents found by a search into the context window of a language model before or while it answers, so it can rely on working memory instead of vague recollection.",
        "Confidence target": "Grading with a confidence target t rewards a correct answer with one point, gives zero for I don't know, and takes away t divided by one minus t points for a wrong answer. Answering then pays only when the chance of being right is above t.",
        "Calibration": "A model is calibrated when the confidence it expresses matches how often it is right: among answers given with 80 percent confidence, about 80 percent should be correct.",
        "Context window": "The context window is the number of tokens a language model can take into account at once. Text beyond it is not seen by the model.",
        "Temperature (sampling)": "Temperature controls randomness when sampling the next token. At temperature zero the most likely token is always chosen; higher temperatures make unlikely tokens more frequent.",
    }
    return [Article(t, src, body) for t, body in notes.items()]


@cache
def questions() -> tuple[FactQuestion, ...]:
    out: list[FactQuestion] = []
    rows = _rows("countries")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"What is the capital of {_the(r['name'])}?",
                _aliases(r["capital"]),
                "capital",
                f"The capital of {_the(r['name'])} is {r['capital']}.",
                _pick_wrong(rows, "capital", i),
            )
        )
    rows = _rows("elements")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"What is the chemical symbol of {r['name'].lower()}?",
                (r["symbol"],),
                "element",
                f"The chemical symbol of {r['name'].lower()} is {r['symbol']}.",
                _pick_wrong(rows, "symbol", i),
            )
        )
    rows = _rows("planets")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"Which planet is the {ORDINALS[int(r['order']) - 1]} from the Sun?",
                (r["name"],),
                "planet",
                f"{r['name']} is the {ORDINALS[int(r['order']) - 1]} planet from the Sun.",
                _pick_wrong(rows, "name", i),
            )
        )
    rows = _rows("books")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"Who wrote {r['title']}?",
                _person_aliases(r["author"]),
                "book",
                f"{r['title']} was written by {r['author']}.",
                _pick_wrong(rows, "author", i),
            )
        )
    rows = _rows("worldcups")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"Who won the {r['year']} FIFA World Cup?",
                _aliases(r["winner"]),
                "worldcup",
                f"{r['winner']} won the {r['year']} FIFA World Cup.",
                _pick_wrong(rows, "winner", i),
            )
        )
    rows = _rows("people")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"Who is remembered for {r['known_for']}?",
                _person_aliases(r["name"]),
                "person",
                f"{r['name']} is remembered for {r['known_for']}.",
                _pick_wrong(rows, "name", i),
            )
        )
    out += _place_and_thing_questions()
    return tuple(out)


def _place_and_thing_questions() -> list[FactQuestion]:
    out: list[FactQuestion] = []
    rows = _rows("inventions")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"Who is credited with the {r['invention']}?",
                _aliases(r["inventor"]) + _person_aliases(r["inventor"])[1:],
                "invention",
                f"The {r['invention']} is credited to {r['inventor']}.",
                _pick_wrong(rows, "inventor", i),
            )
        )
    rows = _rows("landmarks")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"In which city is the {r['name']}?",
                _aliases(r["city"]),
                "landmark",
                f"The {r['name']} is in {r['city']}.",
                _pick_wrong(rows, "city", i),
            )
        )
    rows = _rows("geography")
    for i, r in enumerate(rows):
        out.append(
            FactQuestion(
                f"What is {r['fact']}?",
                _aliases(r["answer"]),
                "geography",
                f"{r['answer']} is {r['fact']}.",
                _pick_wrong(rows, "answer", i),
            )
        )
    return out


def ascii_fold(s: str) -> str:
    """Accents removed, for matching answers such as Bogotá and Bogota."""
    return _ascii(s)
