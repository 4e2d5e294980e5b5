"""Probe sets: invented entities, well-known facts, unknowable questions, letter tasks, user files."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from playground.core.errors import PlaygroundError
from playground.core.facts import questions as fact_questions

ProbeType = Literal["fact", "invented", "unknowable", "letters"]
TYPES: tuple[ProbeType, ...] = ("fact", "invented", "unknowable", "letters")
NOT_EXIST = "does not exist"


class ProbeError(PlaygroundError):
    pass


@dataclass(frozen=True)
class Probe:
    question: str
    answers: tuple[str, ...]  # gold answers and aliases; empty for invented / unknowable
    type: ProbeType
    id: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # answers known to be wrong (TruthfulQA's incorrect answers): naming one makes an answer incorrect
    contradictions: tuple[str, ...] = ()


# Name parts for invented people, places, books and species: recombined with a seed, so the
# entities are new every time and cannot be in any training set.
FIRST = "Zyler Marlo Quenby Tarvin Elowen Brisa Caddock Ilsabet Orrin Vesna Thadeus Lioren Kestrel Amadi Sorcha Bexley Idris Wrenna Joriel Calder".split()
LAST = "Vance Quillfeather Ardmoor Pellacourt Xandrel Thornwick Maravetti Okonkwo-Bell Strazny Delacroix-Finch Harrowgate Yusupova Brennick Ostrava Kilgannon Vaszary Penhallow Ruskovic Amberlay Tindall".split()
PLACE_A = "Vel Kor Mar Tash Bren Quil Oss Dor Zan Lum Fen Ash Kel Riv".split()
PLACE_B = "dravia mouth holm ovka quay mere stead ridge vale pori haven ford tarn wick".split()
BOOK_A = ["Silent", "Glass", "Ninth", "Amber", "Hollow", "Last", "Crimson", "Paper"]
BOOK_B = "Cartographer Orchard Lighthouse Archive Meridian Harvest Labyrinth Conservatory Ferryman Almanac".split()
GENUS = "Veloxia Thrombyx Calidora Nemophrax Quillaria Ostrelia Brundix Palvaena".split()
EPITHET = "aurifrons minuta borealis skaldii pellucida vantorum ferox silvicola".split()

INVENTED_TEMPLATES = [
    ("person", "Who is {name}?"),
    ("person", "What is {name} famous for?"),
    ("place", "What is the population of {place}?"),
    ("place", "In which country is the town of {place}?"),
    ("book", "Who wrote the novel {book}?"),
    ("species", "What does the {species} eat?"),
]

UNKNOWABLE = [
    "Who will be the president of Russia in 2080?",
    "Who will win the 2090 FIFA World Cup?",
    "What will the price of gold be on 1 January 2075?",
    "Which country will host the 2100 Olympic Games?",
    "What will be the best-selling car in 2085?",
    "Who will be the prime minister of Canada in 2091?",
    "What will the world population be in the year 2250?",
    "Which film will win the Academy Award for Best Picture in 2070?",
    "What is the name of my neighbour's cat?",
    "What did I eat for breakfast this morning?",
    "What is my grandmother's middle name?",
    "What number am I thinking of right now?",
    "What will the weather be in Paris on 3 May 2077?",
    "Who will be the richest person in the world in 2100?",
    "What is the password of my email account?",
    "How many people will live on Mars in 2150?",
    "What will be the top song of the year 2083?",
    "Which team will win the 2079 Super Bowl?",
    "What is the phone number of my dentist?",
    "When will the next person be born in my family?",
]

WORDS = (
    "strawberry excellence banana mississippi bookkeeper committee occurrence parallel "
    "necessary tomorrow accommodate embarrass possession assessment millennium raspberry "
    "balloon coffee giraffe hippopotamus"
).split()


def invented(n: int = 40, seed: int = 0) -> list[Probe]:
    rng = random.Random(seed)
    out: list[Probe] = []
    seen: set[str] = set()
    while len(out) < n:
        kind, template = INVENTED_TEMPLATES[len(out) % len(INVENTED_TEMPLATES)]
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        place = rng.choice(PLACE_A) + rng.choice(PLACE_B)
        book = f"The {rng.choice(BOOK_A)} {rng.choice(BOOK_B)}"
        species = f"{rng.choice(GENUS)} {rng.choice(EPITHET)}"
        q = template.format(name=name, place=place, book=book, species=species)
        if q in seen:
            continue
        seen.add(q)
        out.append(Probe(q, (), "invented", f"invented-{seed}-{len(out)}", {"kind": kind}))
    return out


def letters(n: int = 40, seed: int = 0) -> list[Probe]:
    rng = random.Random(seed)
    out: list[Probe] = []
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        if i % 2 == 0:
            letter = rng.choice(sorted(set(word)))
            q = f'How many times does the letter "{letter}" appear in the word "{word}"?'
            count = word.count(letter)
            words = ["zero", "one", "two", "three", "four", "five", "six", "seven"]
            ans = (str(count), words[count]) if count < len(words) else (str(count),)
            out.append(Probe(q, ans, "letters", f"letters-count-{i}", {"task": "count"}))
        else:
            q = f'Spell the word "{word}" backwards.'
            out.append(
                Probe(q, (word[::-1],), "letters", f"letters-reverse-{i}", {"task": "reverse"})
            )
    return out


def facts() -> list[Probe]:
    return [
        Probe(
            f.question,
            f.answers,
            "fact",
            f"fact-{i}",
            {"category": f.category, "statement": f.statement, "wrong": f.wrong},
        )
        for i, f in enumerate(fact_questions())
    ]


def unknowable() -> list[Probe]:
    return [Probe(q, (), "unknowable", f"unknowable-{i}") for i, q in enumerate(UNKNOWABLE)]


BUILTIN = {
    "invented": lambda seed: invented(seed=seed),
    "facts": lambda seed: facts(),
    "unknowable": lambda seed: unknowable(),
    "letters": lambda seed: letters(seed=seed),
}


def load_set(name: str, seed: int = 0) -> list[Probe]:
    """A built-in set by name, or a CSV / JSONL file (question, answers, optional type)."""
    if name in BUILTIN:
        return BUILTIN[name](seed)
    if name == "all":
        return [
            p for key in ("facts", "invented", "unknowable", "letters") for p in BUILTIN[key](seed)
        ]
    path = Path(name).expanduser()
    if not path.exists():
        raise ProbeError(
            f"unknown probe set {name!r}: use {', '.join(BUILTIN)}, all, or a .csv / .jsonl file"
        )
    return load_file(path)


def _answers(value: object, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ProbeError(f"{where}: 'answers' must be a list of strings")
        return tuple(v.strip() for v in value if v.strip())
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("|") if v.strip())
    raise ProbeError(f"{where}: 'answers' must be text (aliases separated by |) or a list")


def _probe(row: dict[str, Any], where: str, i: int, stem: str) -> Probe:
    q = row.get("question")
    if not isinstance(q, str) or not q.strip():
        raise ProbeError(f"{where}: 'question' is missing or empty")
    answers = _answers(row.get("answers", row.get("answer")), where)
    kind = (row.get("type") or ("fact" if answers else "unknowable")).strip()
    if kind not in TYPES:
        raise ProbeError(f"{where}: type must be one of {', '.join(TYPES)}, not {kind!r}")
    if kind in ("fact", "letters") and not answers:
        raise ProbeError(f"{where}: a {kind} question needs at least one answer")
    return Probe(q.strip(), answers, kind, f"{stem}-{i}")


def load_file(path: Path) -> list[Probe]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ProbeError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ProbeError(f"cannot read {path}: {e.strerror}") from e
    out: list[Probe] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProbeError(f"{where}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ProbeError(f"{where}: each line must be a JSON object")
            out.append(_probe(row, where, len(out), path.stem))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "question" not in reader.fieldnames:
            raise ProbeError(
                f"{path}, line 1: the header must name a 'question' column (and 'answers')"
            )
        for row in reader:
            out.append(_probe(row, f"{path}, line {reader.line_num}", len(out), path.stem))
    else:
        raise ProbeError(f"{path}: use a .csv or .jsonl file")
    if not out:
        raise ProbeError(f"{path}: no questions in the file")
    return out
