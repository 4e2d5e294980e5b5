"""Probe sets: invented entities, well-known facts, unknowable questions, letter tasks, user files."""

from __future__ import annotations

import ast
import csv
import io
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

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
    if not path.exists() and not path.is_symlink():
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
    if "\n" in q.strip():
        raise ProbeError(f"{where}: the question runs over several lines (a quote left open?)")
    answers = _answers(row.get("answers", row.get("answer")), where)
    raw = row.get("type")
    if raw is not None and not isinstance(raw, str):
        raise ProbeError(f"{where}: type must be one of {', '.join(TYPES)}, not {raw!r}")
    kind = (raw or ("fact" if answers else "unknowable")).strip()
    if kind not in TYPES:
        raise ProbeError(f"{where}: type must be one of {', '.join(TYPES)}, not {kind!r}")
    if kind in ("fact", "letters") and not answers:
        raise ProbeError(f"{where}: a {kind} question needs at least one answer")
    return Probe(q.strip(), answers, kind, f"{stem}-{i}")


SIMPLEQA_HEADER = ("metadata", "problem", "answer")
TRUTHFULQA_HEADER = (
    "Type",
    "Category",
    "Question",
    "Best Answer",
    "Correct Answers",
    "Incorrect Answers",
    "Source",
)


def _split(value: str | None) -> tuple[str, ...]:
    """TruthfulQA's ';'-separated answers, without "I have no comment" (an abstention, which
    is not attempted rather than correct)."""
    parts = (v.strip() for v in (value or "").split(";"))
    return tuple(dict.fromkeys(v for v in parts if v and "no comment" not in v.lower()))


def _simpleqa(row: dict[str, str], where: str, i: int, stem: str) -> Probe:
    q, a = (row.get("problem") or "").strip(), (row.get("answer") or "").strip()
    if not q or not a:
        raise ProbeError(f"{where}: SimpleQA rows need a problem and an answer")
    meta: dict[str, Any] = {"source": "simpleqa"}
    try:  # metadata is a Python dict literal: {'topic': ..., 'answer_type': ..., 'urls': [...]}
        info = ast.literal_eval(row.get("metadata") or "{}")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        info = {}
    if isinstance(info, dict) and isinstance(info.get("topic"), str):
        meta["category"] = info["topic"]
    return Probe(q, (a,), "fact", f"{stem}-{i}", meta)


def _truthfulqa(row: dict[str, str], where: str, i: int, stem: str) -> Probe:
    q = (row.get("Question") or "").strip()
    answers = _split(row.get("Best Answer")) + _split(row.get("Correct Answers"))
    answers = tuple(dict.fromkeys(answers))
    if not q or not answers:
        raise ProbeError(f"{where}: TruthfulQA rows need a question and a correct answer")
    meta = {
        "source": "truthfulqa",
        "category": (row.get("Category") or "").strip(),
        "kind": (row.get("Type") or "").strip(),
    }
    return Probe(q, answers, "fact", f"{stem}-{i}", meta, _split(row.get("Incorrect Answers")))


def _read_csv(path: Path, text: str) -> list[Probe]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = tuple(reader.fieldnames or ())
    except csv.Error as e:
        raise ProbeError(f"{path}, line 1: not a CSV header ({e})") from e
    make = _probe
    if header[:3] == SIMPLEQA_HEADER:
        make = _simpleqa
    elif header[: len(TRUTHFULQA_HEADER)] == TRUTHFULQA_HEADER:
        make = _truthfulqa
    elif "question" not in header:
        raise ProbeError(
            f"{path}, line 1: the header must name a 'question' column (and 'answers'), or be "
            "SimpleQA's (metadata,problem,answer) or TruthfulQA's (Type,Category,Question,...)"
        )
    out: list[Probe] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise ProbeError(
                f"{path}, line {start}: a quoted field is not closed properly ({e})"
            ) from e
        if None in row:
            raise ProbeError(f"{path}, line {start}: more fields than the header names")
        out.append(make(row, f"{path}, line {start}", len(out), path.stem))
    return out


def read_text_file(path: Path) -> str:
    """A user's .csv/.jsonl file as text; anything but a readable UTF-8 regular file is a
    ProbeError (a FIFO or a device would block or never end; a folder has no rows)."""
    if not path.is_file():
        raise ProbeError(
            f"{path}: not a regular file" if path.exists() else f"{path}: no such file"
        )
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of a header
    except UnicodeDecodeError as e:
        raise ProbeError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ProbeError(f"cannot read {path}: {e.strerror}") from e


def jsonl_rows(path: Path, text: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each JSON object of a JSON Lines text with where it is ("FILE, line N")."""
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
        yield row, where


def load_file(path: Path) -> list[Probe]:
    text = read_text_file(path)
    out: list[Probe] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for row, where in jsonl_rows(path, text):
            out.append(_probe(row, where, len(out), path.stem))
    elif path.suffix.lower() == ".csv":
        out = _read_csv(path, text)
    else:
        raise ProbeError(f"{path}: use a .csv or .jsonl file")
    if not out:
        raise ProbeError(f"{path}: no questions in the file")
    return out


def stratum(p: Probe) -> tuple[str, str]:
    """A probe's stratum for sampling: its type and its category (or kind, or task)."""
    sub = p.meta.get("category") or p.meta.get("kind") or p.meta.get("task") or ""
    return p.type, str(sub)


def _allocate(sizes: dict[Any, int], n: int, rng: random.Random) -> dict[Any, int]:
    """n draws over groups of the given sizes: one per group while n allows (the larger groups
    first, ties in random order), the rest in proportion to what is left (largest remainder)."""
    keys = sorted(sizes, key=lambda k: (-sizes[k], rng.random()))
    take = dict.fromkeys(keys, 0)
    for k in keys[:n]:
        take[k] = 1
    left = n - sum(take.values())
    room = {k: sizes[k] - take[k] for k in keys}
    total = sum(room.values())
    if left <= 0 or total <= 0:
        return take
    quotas = {k: left * room[k] / total for k in keys}
    for k in keys:
        take[k] += int(quotas[k])
    rest = left - sum(int(q) for q in quotas.values())
    for k in sorted(keys, key=lambda k: -(quotas[k] - int(quotas[k])))[:rest]:
        take[k] += 1
    return take


T = TypeVar("T")


def stratified_sample(
    items: Sequence[T], n: int | None, seed: int, key: Callable[[T], tuple[str, str]]
) -> list[T]:
    """A seeded random sample of n items, stratified by key's first part (the type) and then
    by its second (the category), in the items' own order; all items when n is None or larger."""
    if n is None or n >= len(items):
        return list(items)
    rng = random.Random(seed)
    groups: dict[str, dict[str, list[int]]] = {}
    for i, it in enumerate(items):
        a, b = key(it)
        groups.setdefault(a, {}).setdefault(b, []).append(i)
    chosen: list[int] = []
    per_type = _allocate({a: sum(map(len, g.values())) for a, g in groups.items()}, n, rng)
    for a, g in groups.items():
        per_cat = _allocate({b: len(v) for b, v in g.items()}, per_type[a], rng)
        for b, idx in g.items():
            chosen += rng.sample(idx, per_cat[b])
    return [items[i] for i in sorted(chosen)]


def sample(probes: Sequence[Probe], n: int | None, seed: int = 0) -> list[Probe]:
    """`--limit N`: a seeded sample stratified by type and category (the same for every command)."""
    return stratified_sample(probes, n, seed, stratum)


def describe(probes: Iterable[Probe]) -> str:
    """Counts per type, e.g. "fact 10, invented 2, unknowable 1, letters 2"."""
    counts = Counter(p.type for p in probes)
    return ", ".join(f"{t} {counts[t]}" for t in TYPES if counts[t])
