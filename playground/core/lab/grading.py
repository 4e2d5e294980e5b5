"""Grading answers: SimpleQA outcomes from reading the whole graded answer, not a substring test.

The graded answer is a *span* of the response (its first non-empty line, see `extract_answer`);
confidence signals are computed over the same span. Within it:

- a gold alias must appear whole (all its words, in order, as whole tokens; short golds such as a
  letter or an element symbol are matched case-sensitively and never as the pronoun "I"); long
  golds (TruthfulQA sentences) may match by all their content words, if no negation flips them;
- numbers and dates are read one way whatever their spelling ("thirty-two" = 32, "two hundred
  and six" = 206, "9 November 1989" = "1989-11-09"); a list marker before the answer is skipped;
- a gold mention that is negated ("Geneva, not Bern"), reported and contradicted ("often
  attributed to Edison, but ..."), or hedged with another candidate ("Lima or Quito", a known
  wrong answer, a TruthfulQA incorrect answer) is INCORRECT;
- without the gold, an answer that claims anything is INCORRECT, even hedged ("She is an
  actress, but I'm not sure"); one that claims nothing (an abstention, a question back, an echo
  of the question) is NOT_ATTEMPTED, which scores 0 on every question type (Kalai et al.,
  SimpleQA): "I don't know" is never +1.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from playground.core.facts import ascii_fold
from playground.core.lab.probes import (
    TYPES,
    Probe,
    ProbeError,
    ProbeType,
    jsonl_rows,
    read_text_file,
)

# SimpleQA's outcomes for one answer.
Outcome = Literal["correct", "incorrect", "not_attempted"]
CORRECT: Final = "correct"
INCORRECT: Final = "incorrect"
NOT_ATTEMPTED: Final = "not_attempted"
UNANSWERABLE: Final = ("invented", "unknowable")  # probe types with no gold answer

_ABSTAIN = re.compile(
    r"\b(i\s*(do not|don't|dont|did not|didn't)\s*know|i'?m not (sure|certain|aware|familiar)|"
    r"i am not (sure|certain|aware|familiar)|not sure|no idea|not familiar|unfamiliar|"
    r"(cannot|can't|can not|could not|couldn't|unable to|not able to|won't be able to)\s+"
    r"(answer|know|say|predict|tell|determine|provide|find|help|confirm|identify|access|see|"
    r"count|read|guess|verify|browse|look)|no comment|never heard of|"
    r"(do not|don't|dont|cannot|can't) (recogni[sz]e|place)|"
    r"(there is|there are|i know of) no (\w+ ){1,3}(called|named|by that name)|"
    r"not (a |an |any )?(\w+ ){0,3}(that )?i (know|recogni[sz]e|have heard) of|"
    r"(do not|don't|dont) (think|believe) (that )?(\w+ ){0,4}(exists?|is real)|"
    r"(have|need) to (look\b.{0,12}\bup|check|search|verify|research)|"
    r"too (early|soon) to (tell|say|know|predict)|"
    r"will (only )?be (announced|decided|determined|revealed)|^\W*n/?a\W*$|"
    r"je ne (le )?sais pas|\bno (lo )?s[eé]\b|ich wei(ß|ss) (es )?nicht|n[aã]o sei|non (lo )?so\b|"
    r"не знаю|不知道|わかりません|分かりません|"
    r"no (reliable |specific |available |public |accurate |verifiable |such |further )?"
    r"(information|data|details|record|records|knowledge|answer)|"
    r"(do not|don't|dont|does not|doesn't) have (any |the |that |this |such |enough |access to |"
    r"specific |reliable )*"
    r"(information|data|knowledge|details|ability|access|answer|way)|"
    r"i have no (information|knowledge|data|way|idea|access)|"
    r"(is|are|remains?|still) (unknown|not known|uncertain|unclear)|^\W*unknown\W*$|"
    r"not (yet )?(known|decided|determined|been decided|been determined|knowable|predictable)|"
    r"impossible to (know|say|predict|tell|determine)|no way (to|of) (know|knowing|tell|telling|predict)|"
    r"(nobody|no one|no-one) (can |could |will )?(know|knows|predict|tell)|"
    r"(does not|doesn't|did not|didn't) exist|there is no (such|record|known|evidence)|"
    r"not (a )?real|fictional|made[- ]up|not aware of|beyond my (knowledge|abilities)|"
    r"(cannot|can't) be (known|predicted|determined)|in the future|"
    r"(has not|hasn't|have not|haven't|had not) (yet )?(been )?(happened|awarded|announced|decided|"
    r"determined|held|played|chosen|elected|taken place|occurred)|"
    r"as an ai|i'?m an ai|language model)",
    re.IGNORECASE,
)

# Words that carry no claim: function words, politeness, talk about answering.
STOPWORDS = frozenset(
    """a an the and of to in on at for by with from as is are was were be been being am it its this
    that these those there here i me my we our you your he him his she her they them their who whom
    whose what which when where why how do does did done have has had will would shall should can
    could may might must so very just also too some any all about into than then there's it's
    i'm i've i'd let let's that's what's who's here's where's he's she's they're we're you're
    """.split()
)
# normalized words have lost their apostrophes ("That's" -> "thats")
STOPWORDS = STOPWORDS | {w.replace("'", "") for w in STOPWORDS}
FILLER = frozenset(
    """sorry apologize apologies unfortunately please help helpful else anything something more
    context provide check know question answer answers information sure certain happy assist glad
    specific details detail hmm well ok okay oh thank thanks hope hi hello great good yes
    think believe guess probably perhaps maybe possibly likely seems seem say said tell
    give find look looking found like would want need try trying able current currently
    available exact exactly really actually however but although though understand mean
    far knowledge aware
    """.split()
)
NEGATIONS = frozenset(
    "not no never isnt wasnt arent werent doesnt didnt dont cannot cant nor neither instead rather "
    "mistakenly wrongly falsely erroneously".split()
)
CONTRAST = frozenset("but however actually although though whereas while instead".split())
REPORTED = frozenset(
    "attributed credited believed thought said claimed popularly commonly often widely".split()
)
_SAYING = frozenset("say says think believe claim claims".split())
_SAYERS = frozenset("some many people others they most".split())
DENIED_AFTER = frozenset("incorrect wrong false myth misconception mistake".split())
MODIFIERS = frozenset(
    "east west north south northern southern eastern western new old upper lower little greater central".split()
)
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "once": "1",
    "twice": "2",
    "thrice": "3",
}
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|[A-Za-z0-9]+(?:['’.\-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_NUMBER = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$|^\d+(\.\d+)?$")
_CLAUSE_END = frozenset('.!?;:,—()[]"“”/')


class Grade(TypedDict):
    """An answer's outcome, why, and the span of the response it was read from."""

    abstained: bool
    exact_match: bool
    f1: float
    outcome: Outcome
    reason: str
    span: tuple[int, int]  # character offsets of the graded answer in the response


@dataclass(frozen=True)
class _Tok:
    raw: str  # as written (accents folded)
    norm: str  # normalized ("" for punctuation and a/an/the)
    punct: bool


def _norm_token(raw: str) -> str:
    low = raw.lower()
    if _NUMBER.match(low):  # 1,000 -> 1000; 100.0 -> 100; 3.50 -> 3.5
        return format(Decimal(low.replace(",", "")).normalize(), "f")
    if "," in low:  # "1,2,3": a list of numbers
        return " ".join(_norm_token(part) for part in low.split(",") if part)
    low = re.sub(r"['’.\-]", "", low)
    if low in ("a", "an", "the"):
        return ""
    return NUMBER_WORDS.get(low, low)


_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def _number_parts(tok: _Tok) -> list[int] | None:
    """The values of a number word or a hyphenated compound ("forty-five" -> [40, 5])."""
    if tok.punct:
        return None
    parts = tok.raw.lower().split("-")
    values = []
    for w in parts:
        if w in _SCALES:
            values.append(-_SCALES[w])  # a scale multiplies; marked negative
        elif w in NUMBER_WORDS and w not in ("once", "twice", "thrice"):
            values.append(int(NUMBER_WORDS[w]))
        else:
            return None
    return values


def _merge_numbers(toks: list[_Tok]) -> list[_Tok]:
    """Number words written out become one number: "thirty-two" -> 32, "two hundred and six"
    -> 206, "one thousand" -> 1000, a year read in pairs "nineteen forty-five" -> 1945. A run
    that does not read as one number ("one two three") stays word by word."""
    out: list[_Tok] = []
    k = 0
    while k < len(toks):
        first = _number_parts(toks[k])
        if first is None:
            out.append(toks[k])
            k += 1
            continue
        total, group, prev, j, values = 0, 0, 0, k, first
        used = -1  # the last token read into the number
        ok = True
        while True:
            for v in values:
                if v < 0:  # hundred, thousand, million
                    if v == -100:
                        if not 0 < group < 100:
                            ok = False
                            break
                        group *= 100
                    else:
                        total += max(group, 1) * -v
                        group = 0
                elif group == 0 or prev < 0 or (prev >= 20 and prev % 10 == 0 and v < 10):
                    group += v  # "twenty" + "five", "hundred" + "six"
                elif v >= 10 and 10 <= group < 100:
                    group = group * 100 + v  # a year read in pairs: "nineteen" "forty"
                else:
                    ok = False
                    break
                prev = v
            if not ok:
                break
            used = j
            nxt = j + 1
            if nxt + 1 < len(toks) and toks[nxt].raw.lower() == "and" and prev < 0:
                nxt += 1  # "two hundred and six"
            parts = _number_parts(toks[nxt]) if nxt < len(toks) else None
            if parts is None:
                break
            j, values = nxt, parts
        if used < 0 or (used == k and "-" not in toks[k].raw):
            out.append(toks[k])  # not a number, or one number word: as normalized before
            k += 1
            continue
        value = total + group
        raw = " ".join(t.raw for t in toks[k : used + 1])
        out.append(_Tok(raw, str(value), False))
        k = used + 1
    return out


_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_MONTH = r"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_DATES = (
    re.compile(r"\b(?P<year>\d{4})-(?P<num>\d{1,2})-(?P<day>\d{1,2})\b"),  # 1989-11-09
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+(?P<year>\d{{4}})\b", re.I),
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+(?P<year>\d{{4}})\b", re.I),
)


def _date(m: re.Match[str]) -> str:
    g = m.groupdict()
    month = int(g["num"]) if g.get("num") else _MONTHS.index(g["mon"].lower()) + 1
    day = int(g["day"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group()
    return f"{g['year']} {month} {day}"


def _dates(s: str) -> str:
    """Dates written one way: "9 November 1989", "November 9th, 1989" and "1989-11-09" all
    read "1989 11 9" (a year alone still matches a year gold)."""
    for pattern in _DATES:
        s = pattern.sub(_date, s)
    return s


def _tokens(s: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN.finditer(_dates(ascii_fold(s))):
        raw = m.group()
        if raw[0].isalnum():
            out.append(_Tok(raw, _norm_token(raw), False))
        else:
            out.append(_Tok(raw, "", True))
    out = _merge_numbers(out)
    for k, t in enumerate(out):
        # "a" that ends a clause is the letter a, not an article ("the first letter is 'a'.")
        if not t.punct and not t.norm and (k + 1 == len(out) or out[k + 1].punct):
            out[k] = _Tok(t.raw, t.raw.lower(), False)
    return out


def normalize(s: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no a/an/the, single spaces, no accents;
    numbers written one way (1,000 -> 1000, 100.0 -> 100, three -> 3)."""
    return " ".join(w for t in _tokens(s) for w in t.norm.split() if w)


def exact_match(pred: str, gold: str) -> bool:
    return normalize(pred) == normalize(gold)


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 (a reported figure; it never decides an outcome: "George Bush" has F1 0.5
    against "George Washington")."""
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def answer_span(text: str) -> tuple[int, int]:
    """Character span of the graded answer: the first non-empty line (and the next one when the
    first only introduces it, ending with a colon)."""
    pos = 0
    lines = text.splitlines(keepends=True)
    for k, line in enumerate(lines):
        if line.strip():
            start = pos + (len(line) - len(line.lstrip()))
            end = pos + len(line.rstrip())
            if line.rstrip().endswith(":"):
                nxt = pos + len(line)
                for more in lines[k + 1 :]:
                    if more.strip():
                        end = nxt + len(more.rstrip())
                        break
                    nxt += len(more)
            return start, end
        pos += len(line)
    return 0, 0


def extract_answer(text: str) -> str:
    """The text of the graded answer span."""
    start, end = answer_span(text)
    return text[start:end]


def first_answer(text: str) -> str:
    """Old name of `extract_answer`."""
    return extract_answer(text)


# -- reading claims --------------------------------------------------------------------------


def _clauses(span: str) -> list[str]:
    """Sentences and clauses (split at punctuation and at "but"/"however"/"although")."""
    parts = re.split(
        r"(?<=[.!?;])\s+|(?:(?<!\d),|,(?!\d)(?!\s\d{4}\b))\s*|\s+(?=\b(?:but|however|although|though|whereas)\b)|\n",
        span,
        flags=re.IGNORECASE,
    )
    return [p.strip() for p in parts if p and p.strip()]


def _content(text: str, skip: set[str]) -> list[str]:
    words = [w for t in _tokens(text) for w in t.norm.split() if w]
    if len(words) == 1 and words[0] in STOPWORDS and words[0] not in skip:
        return words  # a one-word answer such as "He." (helium) or "I." (iodine) claims it
    return [w for w in words if w not in STOPWORDS and w not in FILLER and w not in skip]


_DENY = re.compile(
    r"\b((does not|doesn't|did not|didn't) exist|not (a )?real|fictional|made[- ]up)\b", re.I
)
# words an unfinished sentence ends with ("The capital of Peru is")
_DANGLING = frozenset("is are was were be of the a an by in to for at on will would and or".split())


# what a denial may name without claiming anything ("not a real person")
_GENERIC = frozenset(
    "person people character name entity place town city country book novel author species "
    "animal figure individual private thing one anyone someone record or".split()
)


def _abstaining(clause: str, golds: Iterable[str] = (), skip: frozenset[str] = frozenset()) -> bool:
    """The clause abstains (and is not a gold answer that reads like one: TruthfulQA's "There is
    no evidence that ..."). Denying that the thing exists is a claim where there is a gold
    answer, and where it goes on to say more ("a fictional character from the 1980s film")."""
    if not _ABSTAIN.search(clause):
        return False
    golds = list(golds)
    if _DENY.search(clause) and not _ABSTAIN.search(_DENY.sub("", clause)):
        if golds:
            return False
        if [w for w in _content(_DENY.sub("", clause), set(skip)) if w not in _GENERIC]:
            return False
    return not any(_ABSTAIN.search(g) and _Reader(clause).find(g) for g in golds)


def _echo_claims(clause: str) -> bool:
    """A finished sentence made only of the question's words still claims something
    ("Brazil is the capital of Brazil."); an unfinished one or a bare name does not."""
    words = [t.raw.lower() for t in _tokens(clause) if not t.punct]
    return len(words) >= 3 and words[-1] not in _DANGLING


_QUESTION_WORDS = frozenset(
    "who whom whose what which when where why how do does did is are was were can could would will "
    "should may shall have has am".split()
)
# advice to the user after an abstention ("..., so you should check the official site")
_ADVICE = re.compile(
    r"(and |so |but |instead,? )?(you|please|i (would |'d )?(recommend|suggest))\b", re.I
)


def _question_back(clause: str) -> bool:
    """A question asked back ("Could you give me more context?", "Who do you mean?"), not a
    tentative answer with a question mark ("Possibly a footballer?", "Ankara?")."""
    words = [t.norm for t in _tokens(clause) if not t.punct and t.norm]
    # the first word, or the second after a label ("Q: Who discovered penicillin?")
    return any(w in _QUESTION_WORDS for w in words[:2]) or "you" in words


def _claims(span: str, question: str, golds: Iterable[str] = ()) -> tuple[list[str], bool, str]:
    """The clauses that claim something (not an abstention, not a question back, more than an
    echo of the question), whether some clause abstains, and the span without its abstaining
    clauses ("I don't know if it is Lima" names no answer)."""
    skip = {w for t in _tokens(question) for w in t.norm.split()}
    golds = list(golds)
    claims: list[str] = []
    kept: list[str] = []
    abstains = False
    prev = False
    for clause in _clauses(span):
        # "... is unknown, as it has not been documented": the reason given belongs to it
        why = prev and re.match(r"(as|because|since|so|which|given)\b", clause, re.I) is not None
        prev = why or _abstaining(clause, golds, frozenset(skip))
        if prev:
            abstains = True
            continue
        if abstains and _ADVICE.match(clause):
            continue  # "I can't know that, and you should check the news": no claim either
        kept.append(clause)
        if clause.rstrip().endswith("?") and _question_back(clause):
            continue
        if _content(clause, skip) or (skip and _echo_claims(clause)):
            claims.append(clause)
    return claims, abstains, " ; ".join(kept) if abstains else span


def is_abstention(text: str) -> bool:
    """The answer abstains and claims nothing."""
    claims, abstains, _ = _claims(extract_answer(text), "")
    return abstains and not claims


# -- finding mentions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mention:
    start: int  # index into the word list
    end: int
    status: Literal["positive", "negated", "reported"]


def _words(toks: list[_Tok]) -> tuple[list[str], list[str], list[int]]:
    """Normalized words, their raw form and the index of their token (punctuation kept apart)."""
    norms, raws, where = [], [], []
    for i, t in enumerate(toks):
        if t.punct or not t.norm:
            continue
        for w in t.norm.split():
            norms.append(w)
            raws.append(t.raw)
            where.append(i)
    return norms, raws, where


class _Reader:
    """One answer span, tokenized once, asked where aliases occur and how they are framed."""

    def __init__(self, span: str):
        self.toks = _tokens(span)
        self.norms, self.raws, self.where = _words(self.toks)
        self.contrast = any(w in CONTRAST for w in self.norms)

    def _boundary(self, a: int, b: int) -> bool:
        """Punctuation between word a and word b (a < b); not the dot of an initial ("J. D.")."""
        lo, hi = self.where[a] + 1, self.where[b]
        return any(
            t.punct
            and t.raw in _CLAUSE_END
            and not (
                t.raw == "." and len(self.toks[k - 1].raw) == 1 and self.toks[k - 1].raw.isupper()
            )
            for k, t in enumerate(self.toks[lo:hi], lo)
        )

    def _is_pronoun(self, k: int) -> bool:
        """Word k is "I"/"A"/"He" used as a word, not as a symbol or a letter."""
        ti = self.where[k]
        nxt = self.toks[ti + 1] if ti + 1 < len(self.toks) else None
        if nxt is None:
            return False
        if nxt.punct:
            return False  # "I." or "'r'": a symbol or a letter ("I'm" is one token)
        return nxt.raw[:1].islower() or nxt.raw.lower() in ("am", "i")

    def find(self, alias: str, others: Iterable[str] = ()) -> list[tuple[int, int]]:
        gold = normalize(alias).split()
        if not gold:
            return []
        longer = {normalize(o) for o in others}
        short = len(gold) == 1 and len(gold[0]) <= 2 and gold[0].isalpha()
        found: list[tuple[int, int]] = []
        n = len(gold)
        for i in range(len(self.norms) - n + 1):
            if self.norms[i : i + n] != gold:
                continue
            if short:
                raw = re.sub(r"['’.\-]", "", self.raws[i])
                want = ascii_fold(alias).strip().strip(".'\"")
                if want != want.lower() and raw != want:
                    continue  # symbols are case-sensitive: "he" is not helium's "He"
                if self._is_pronoun(i):
                    continue
            if (
                i > 0
                and self.norms[i - 1] in MODIFIERS
                and not self._boundary(i - 1, i)
                and f"{self.norms[i - 1]} {' '.join(gold)}" not in longer
            ):
                continue  # "East Germany" does not name "Germany" for West Germany
            if self._longer_name(i, i + n, alias, longer):
                continue  # "Leonardo DiCaprio" does not name "Leonardo" (da Vinci)
            found.append((i, i + n))
        return found

    def _longer_name(self, i: int, j: int, alias: str, longer: set[str]) -> bool:
        """A capitalized alias next to another capitalized word that no alias has: part of a
        different, longer name ("Leonardo DiCaprio", "Emily Bronte" for Charlotte Bronte)."""
        if not alias[:1].isupper():
            return False
        words = " ".join(self.norms[i:j])
        for k, joined in ((j, f"{words} {{}}"), (i - 1, f"{{}} {words}")):
            if not 0 <= k < len(self.norms) or self._boundary(min(k, i), max(k, j - 1)):
                continue
            raw = self.raws[k]
            w = self.norms[k]
            if not raw[:1].isupper() or w in STOPWORDS or w in FILLER or raw == "I":
                continue
            name = joined.format(w)
            if not any(
                name in f" {x} " or name in x or name.replace(" ", "") in x.replace(" ", "")
                for x in longer
            ):
                return True
        return False

    def status(self, i: int, j: int) -> Literal["positive", "negated", "reported"]:
        k = i - 1
        while k >= 0 and i - k <= 3 and not self._boundary(k, i):
            w = self.norms[k]
            if w in CONTRAST:
                break
            if w in NEGATIONS:
                return "negated"
            k -= 1
        for k in range(j, min(j + 4, len(self.norms))):
            if self._boundary(j - 1, k):
                break
            if self.norms[k] in DENIED_AFTER:
                return "negated"
        k = i - 1
        while k >= 0 and i - k <= 6 and not self._boundary(k, i):
            w = self.norms[k]
            if w in REPORTED or (w in _SAYING and k > 0 and self.norms[k - 1] in _SAYERS):
                return "reported"  # "often attributed to X", "some say X"
            k -= 1
        return "positive"

    def mentions(self, aliases: Iterable[str]) -> list[_Mention]:
        aliases = list(aliases)
        out = []
        for alias in aliases:
            for i, j in self.find(alias, aliases):
                out.append(_Mention(i, j, self.status(i, j)))
        return out

    def listed(self, m: _Mention, other: tuple[int, int]) -> bool:
        """The other mention stands next to the gold one as an alternative or in a list:
        joined by "or", "and", "/" or a comma, within one clause."""
        a, b = (m.end, other[0]) if m.end <= other[0] else (other[1], m.start)
        if b < a or b - a > 2:
            return False
        between = self.norms[a:b]
        if any(w not in ("or", "and", "either", "nor") for w in between):
            return False
        seps = self.toks[self.where[a - 1] + 1 : self.where[b]] if a > 0 else []
        return all(t.raw in (",", "/") or not t.punct for t in seps)

    def hedged(self, m: _Mention, golds: list[str]) -> str | None:
        """The other candidate in "X or Y" around a gold mention, if any."""
        gold_words = {w for g in golds for w in normalize(g).split()}
        for k, step in ((m.end, 1), (m.start - 1, -1)):
            o = k + step
            if (
                0 <= k < len(self.norms)
                and self.norms[k] in ("or", "either")
                and 0 <= o < len(self.norms)
                and self.norms[o] not in gold_words
                and self.norms[o] not in STOPWORDS
                and self.norms[o] not in ("not", "so", "more")
            ):
                return self.raws[o]
        return None


@cache
def _category_candidates(category: str) -> tuple[str, ...]:
    from playground.core.facts import questions

    return tuple(dict.fromkeys(q.answers[0] for q in questions() if q.category == category))


def _competitors(probe: Probe) -> tuple[list[str], list[str]]:
    """Known wrong answers: (the probe's contradictions, which no answer may name, and other
    candidates of its kind: its "wrong" answer and the other answers of its category in the
    shipped facts, which an answer may name in passing but not as an alternative to the gold:
    "Argentina beat France" is right, "Argentina or France" and "Argentina and France" are not)."""
    soft: list[str] = []
    wrong = probe.meta.get("wrong")
    if isinstance(wrong, str) and wrong:
        soft.append(wrong)
    category = probe.meta.get("category")
    if isinstance(category, str) and probe.meta.get("source") is None:
        soft += _category_candidates(category)
    q = f" {normalize(probe.question)} "
    golds = {normalize(g) for g in probe.answers}

    def keep(cs: list[str]) -> list[str]:
        return [
            c
            for c in dict.fromkeys(cs)
            if normalize(c) and normalize(c) not in golds and f" {normalize(c)} " not in q
        ]

    return keep(list(probe.contradictions)), keep(soft)


def _overlaps(a: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


def _content_match(reader: _Reader, alias: str) -> bool:
    """A long gold (4+ content words) matched by all its content words, same negation."""
    words = [w for w in normalize(alias).split() if w not in STOPWORDS]
    if len(words) < 4:
        return False
    have = set(reader.norms)
    if not all(w in have for w in words):
        return False
    neg_gold = any(w in NEGATIONS for w in normalize(alias).split())
    return neg_gold == any(w in NEGATIONS for w in reader.norms)


_RESTATE = re.compile(
    r"(?:which|that is|i\.?e\.?|or|also|aka|now|today|nowadays|in other words)\b|=", re.I
)
# a list item's marker or a Markdown heading's hashes before the answer
_LIST_MARK = re.compile(r"^\s*(?:#{1,6}|[-*•+]|\(?\d{1,2}[.)])\s+")


def _bare(clause: str, probe: Probe, span: str) -> bool:
    """A clause that is a bare answer (a few words beyond the question's own), and not one that
    the next clause restates ("It freezes at 0°C, which is 32°F.", "..., today it is Tokyo.")."""
    at = span.find(clause)
    rest = span[at + len(clause) :].lstrip(" ,;:—–-") if at >= 0 else ""
    if clause.rstrip()[-1:] not in (".", "!", "?") and _RESTATE.match(rest):
        return False
    skip = {w for t in _tokens(probe.question) for w in t.norm.split()}
    words = normalize(clause).split()
    if any(w in NEGATIONS for w in words):
        return False  # "It isn't Sydney; the capital is Canberra."
    return 1 <= len(_content(clause, skip)) <= 3 and len(words) <= 5


def _grade_span(probe: Probe, span: str) -> tuple[Outcome, str, bool]:
    """(outcome, reason, abstained) of one answer span."""
    if not span.strip():
        return NOT_ATTEMPTED, "empty answer", False
    span = _LIST_MARK.sub("", span)  # "1. Jupiter", "- Jupiter", "## Jupiter"
    golds = list(probe.answers)
    # a letter task's answer may be the question's own word ("banana" spelled backwards)
    question = "" if probe.type == "letters" else probe.question
    claims, abstains, kept = _claims(span, question, golds)
    if probe.type in UNANSWERABLE:
        if claims:
            return INCORRECT, f"claims {claims[0]!r}, but the question has no answer", abstains
        return NOT_ATTEMPTED, "abstains" if abstains else "claims nothing", abstains
    reader = _Reader(kept)
    reader.contrast = reader.contrast or any(w in CONTRAST for w in normalize(span).split())
    if probe.meta.get("task") == "count":
        return _grade_count(probe, reader, claims, abstains)
    mentions = reader.mentions(golds)
    # "often attributed to X" claims X unless the answer goes on to contradict it ("but ...")
    positive = [
        m
        for m in mentions
        if m.status == "positive" or (m.status == "reported" and not reader.contrast)
    ]
    if not mentions and any(_content_match(reader, g) for g in golds):
        positive = [_Mention(0, 0, "positive")]
    gold_spans = [(m.start, m.end) for m in mentions]
    asked = set(normalize(probe.question).split())  # "ocean" of "Pacific Ocean" tells nothing
    gold_words = {
        w
        for g in golds
        for w in normalize(g).split()
        if (w not in STOPWORDS or " " not in g.strip()) and w not in asked
    }
    first = set(normalize(claims[0]).split()) if claims else set()
    if positive and claims and not first & gold_words and _bare(claims[0], probe, kept):
        # "Spanish. Portuguese is also spoken.": the answer given first is another candidate
        return INCORRECT, f"answers {claims[0]!r} first, not the gold answer", False
    if positive:
        for m in positive:
            other = reader.hedged(m, golds)
            if other:
                return INCORRECT, f"hedges between the gold answer and {other!r}", False
        hard, soft = _competitors(probe)
        for c in hard + soft:
            for i, j in reader.find(c):
                if _overlaps((i, j), gold_spans) or reader.status(i, j) != "positive":
                    continue
                if c in hard:
                    return INCORRECT, f"names the gold answer and also {c!r}", False
                if any(reader.listed(m, (i, j)) for m in positive):
                    return INCORRECT, f"hedges between the gold answer and {c!r}", False
        return CORRECT, "names the gold answer", False
    if mentions:
        return INCORRECT, "denies or discounts the gold answer", False
    if claims:
        return INCORRECT, f"claims {claims[0]!r}, not the gold answer", False
    return NOT_ATTEMPTED, "abstains" if abstains else "claims nothing", abstains


def _grade_count(
    probe: Probe, reader: _Reader, claims: list[str], abstains: bool
) -> tuple[Outcome, str, bool]:
    """A letter count: the first number the answer gives decides."""
    q = {w for t in _tokens(probe.question) for w in t.norm.split()}
    numbers = [(k, w) for k, w in enumerate(reader.norms) if w.isdigit() and w not in q]
    gold = {normalize(g) for g in probe.answers}
    if not numbers:
        if claims:
            return INCORRECT, f"claims {claims[0]!r} without a count", False
        return NOT_ATTEMPTED, "abstains" if abstains else "claims nothing", abstains
    k, first = numbers[0]
    if first in gold and reader.status(k, k + 1) == "positive":
        other = reader.hedged(_Mention(k, k + 1, "positive"), list(gold))
        if other:
            return INCORRECT, f"hedges between {first} and {other!r}", False
        return CORRECT, f"counts {first}", False
    return INCORRECT, f"counts {first}, not {sorted(gold)[0]}", False


def grade(probe: Probe, text: str) -> Grade:
    """Outcome (correct / incorrect / not_attempted), why, and the span it was read from."""
    span = answer_span(text)
    answer = text[span[0] : span[1]]
    outcome, reason, abstained = _grade_span(probe, answer)
    golds = probe.answers
    em = any(exact_match(answer, g) for g in golds)
    f1 = max((token_f1(answer, g) for g in golds), default=0.0)
    return Grade(
        abstained=abstained,
        exact_match=em,
        f1=round(f1, 4),
        outcome=outcome,
        reason=reason,
        span=span,
    )


def equivalent(a: str, b: str) -> bool:
    """Two answers say the same thing (for agreement and semantic-entropy clusters): both claim
    nothing, or their content words are the same, or one's are a subset of the other's with no
    negation and no "or" among the extra words ("Paris" ~ "Paris, France"; not "Paris or Lyon",
    "George Bush" vs "George Washington")."""
    sa, sb = extract_answer(a), extract_answer(b)
    ca = _claims(sa, "")[0]
    cb = _claims(sb, "")[0]
    if not ca or not cb:
        return not ca and not cb
    keep = NEGATIONS | {"or"}
    wa = {w for w in normalize(sa).split() if w not in STOPWORDS or w in keep} - FILLER
    wb = {w for w in normalize(sb).split() if w not in STOPWORDS or w in keep} - FILLER
    if wa == wb:
        return True
    small, big = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    return small <= big and not (big - small) & keep


class RefusalRates(TypedDict):
    """Refusals by question kind: shares (None when no question of that kind) and counts."""

    correct_refusal: float | None  # share of invented/unknowable questions not attempted
    false_acceptance: float | None  # share of invented/unknowable questions attempted
    false_refusal: float | None  # share of fact questions not attempted
    unanswerable: int  # invented/unknowable questions
    refused: int  # ... of them not attempted
    facts: int  # fact questions
    facts_refused: int  # ... of them not attempted


def refusal_rates(pairs: Iterable[tuple[ProbeType | str, Outcome | str]]) -> RefusalRates:
    """Correct refusal, false acceptance and false refusal of (probe type, outcome) pairs."""
    pairs = list(pairs)
    un = [o for t, o in pairs if t in UNANSWERABLE]
    fa = [o for t, o in pairs if t == "fact"]
    refused = sum(o == NOT_ATTEMPTED for o in un)
    facts_refused = sum(o == NOT_ATTEMPTED for o in fa)
    return {
        "correct_refusal": refused / len(un) if un else None,
        "false_acceptance": (len(un) - refused) / len(un) if un else None,
        "false_refusal": facts_refused / len(fa) if fa else None,
        "unanswerable": len(un),
        "refused": refused,
        "facts": len(fa),
        "facts_refused": facts_refused,
    }


# -- grading responses from anywhere (`playground grade FILE`) ---------------------------------


@dataclass(frozen=True)
class Response:
    """One row of a responses file: the question as a probe, the response, a hand label if any."""

    probe: Probe
    response: str
    label: str | None
    where: str  # "FILE, line N"


def _list(value: object, where: str, name: str, csv_text: bool) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str) and csv_text:
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ProbeError(f"{where}: {name!r} is not a JSON list ({e.msg})") from e
        else:
            value = text.split(";")
    if isinstance(value, str):
        value = value.split(";")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProbeError(f"{where}: {name!r} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _response(row: dict[str, Any], where: str, i: int, csv_text: bool) -> Response:
    q, resp, kind = row.get("question"), row.get("response"), row.get("type")
    if not isinstance(q, str) or not q.strip():
        raise ProbeError(f"{where}: 'question' is missing or empty")
    if not isinstance(resp, str):
        raise ProbeError(f"{where}: 'response' is missing or not text")
    answers = _list(row.get("answers"), where, "answers", csv_text)
    wrong = _list(row.get("incorrect_answers"), where, "incorrect_answers", csv_text)
    if kind in (None, ""):
        kind = "fact" if answers else "unknowable"
    if not isinstance(kind, str) or kind.strip() not in TYPES:
        raise ProbeError(f"{where}: 'type' must be one of {', '.join(TYPES)}, not {kind!r}")
    kind = kind.strip()
    if kind in ("fact", "letters") and not answers:
        raise ProbeError(f"{where}: a {kind} question needs at least one answer")
    if kind in UNANSWERABLE and answers:
        raise ProbeError(f"{where}: an {kind} question has no gold answer; leave 'answers' empty")
    label = row.get("label")
    if label not in (None, "", CORRECT, INCORRECT, NOT_ATTEMPTED):
        raise ProbeError(f"{where}: 'label' must be correct, incorrect or not_attempted")
    meta: dict[str, Any] = {}
    if kind == "letters" and q.strip().lower().startswith("how many"):
        meta["task"] = "count"
    probe = Probe(q.strip(), answers, kind, f"row-{i}", meta, wrong)  # type: ignore[arg-type]
    return Response(probe, resp, label or None, where)


def read_responses(path: Path) -> list[Response]:
    """Rows of question, answers, type and response from a .jsonl or .csv file (unknown fields
    ignored); a bad row is a ProbeError naming the file and line."""
    text = read_text_file(path)
    out: list[Response] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for row, where in jsonl_rows(path, text):
            out.append(_response(row, where, len(out), csv_text=False))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text), strict=True)
        fields = reader.fieldnames or []
        if "question" not in fields or "response" not in fields:
            raise ProbeError(f"{path}, line 1: the header must name 'question' and 'response'")
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise ProbeError(f"{path}, line {start}: a quoted field is not closed ({e})") from e
            out.append(_response(row, f"{path}, line {start}", len(out), csv_text=True))
    else:
        raise ProbeError(f"{path}: use a .csv or .jsonl file")
    if not out:
        raise ProbeError(f"{path}: no responses in the file")
    return out


JUDGE_PROMPT = """Grade the answer to a question against the gold answer.
Question: {question}
Gold answer: {gold}
Answer: {answer}
Reply with one letter: A if the answer is correct (it contains the gold answer and does not contradict it), B if it is incorrect (it contradicts the gold answer, even when hedged), C if it does not attempt an answer.
Grade:"""


def parse_judge(text: str) -> Outcome | None:
    m = re.search(r"\b([ABC])\b", text.strip().upper())
    verdicts: dict[str, Outcome] = {"A": CORRECT, "B": INCORRECT, "C": NOT_ATTEMPTED}
    return verdicts.get(m.group(1)) if m else None
