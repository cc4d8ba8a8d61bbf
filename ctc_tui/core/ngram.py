"""Word n-gram language models: interpolated modified Kneser-Ney estimation, ARPA writing and reading.

Standard library only: ``ctc-tui lm build`` estimates the model on the login node (no KenLM ``lmplz``:
it is not on any package registry), and the runner's beam search reads the ARPA file back with
``ArpaModel``. The estimate follows Chen & Goodman's interpolated modified Kneser-Ney, as KenLM's lmplz
does: the highest order uses raw counts, lower orders continuation counts (how many different words
precede an n-gram), except n-grams that begin with ``<s>``, which keep raw counts; three discounts per
order from its count-of-counts; unigrams interpolated with the uniform distribution over the vocabulary
(``<unk>`` included). Interpolated probabilities are written with backoff weights, so that an ARPA
reader's backoff rule reproduces the interpolated model exactly.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROB = -99.0  # log10 "probability" ARPA files give <s>, which is never predicted
#: Discounts used when a tiny corpus leaves an order's count-of-counts undefined (n1..n4 zero).
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Gram = tuple[str, ...]


def count_ngrams(sentences: Iterable[list[str]], order: int) -> list[Counter[Gram]]:
    """Raw counts of every n-gram (1..order) of the sentences padded with ``<s>`` and ``</s>``."""
    counts: list[Counter[Gram]] = [Counter() for _ in range(order)]
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            grams = counts[n - 1]
            for i in range(len(padded) - n + 1):
                grams[tuple(padded[i : i + n])] += 1
    return counts


def adjusted_counts(raw: list[Counter[Gram]]) -> list[Counter[Gram]]:
    """Kneser-Ney counts: raw for the highest order and for n-grams starting with ``<s>``; otherwise the
    number of distinct words seen before the n-gram."""
    order = len(raw)
    adjusted: list[Counter[Gram]] = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(raw[-1])
    for n in range(order - 1, 0, -1):
        for gram in raw[n]:
            adjusted[n - 1][gram[1:]] += 1
        for gram, count in raw[n - 1].items():
            if gram[0] == BOS:
                adjusted[n - 1][gram] = count
    adjusted[0].pop((BOS,), None)
    return adjusted


def discounts(counts: Counter[Gram]) -> tuple[float, float, float]:
    """(D1, D2, D3+) from the count-of-counts n1..n4 (Chen & Goodman); the fallback where undefined."""
    n = Counter(c for c in counts.values() if c <= 4)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    found = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d <= k for k, d in enumerate(found, 1)):
        return FALLBACK_DISCOUNTS
    return found


@dataclass
class NgramModel:
    """An estimated model: per order, each n-gram's interpolated probability and (for contexts) its
    backoff weight, both as plain probabilities (not logs)."""

    order: int
    probs: list[dict[Gram, float]]
    backoffs: list[dict[Gram, float]]
    discounts: list[tuple[float, float, float]] = field(default_factory=list)

    def prob(self, context: Gram, word: str) -> float:
        """p(word | context) by the backoff rule (the last ``order - 1`` words of context are used)."""
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        weight = 1.0
        while True:
            gram = (*context, word)
            p = self.probs[len(gram) - 1].get(gram)
            if p is not None:
                return weight * p
            if not context:
                return weight * self.probs[0][(UNK,)]
            weight *= self.backoffs[len(context) - 1].get(context, 1.0)
            context = context[1:]


def estimate(sentences: Iterable[list[str]], order: int = 3) -> NgramModel:
    """Interpolated modified Kneser-Ney estimate of an ``order``-gram model of the sentences."""
    if order < 1:
        raise ValueError("order must be at least 1")
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise ValueError("no text to estimate a language model from")
    adjusted = adjusted_counts(raw)
    ds = [discounts(c) for c in adjusted]
    probs: list[dict[Gram, float]] = []
    backoffs: list[dict[Gram, float]] = [dict() for _ in range(order)]
    for n in range(1, order + 1):
        discounted, gammas = _discounted(adjusted[n - 1], ds[n - 1])
        if n == 1:
            vocab = len(adjusted[0]) + (0 if (UNK,) in adjusted[0] else 1)
            gamma = gammas[()]
            level = {g: p + gamma / vocab for g, p in discounted.items()}
            level.setdefault((UNK,), gamma / vocab)
        else:
            lower = probs[n - 2]
            level = {g: p + gammas[g[:-1]] * lower[g[1:]] for g, p in discounted.items()}
            backoffs[n - 2] = dict(gammas)
        probs.append(level)
    return NgramModel(order, probs, backoffs, ds)


def _discounted(
    counts: Counter[Gram], ds: tuple[float, float, float]
) -> tuple[dict[Gram, float], dict[Gram, float]]:
    """Each n-gram's discounted share of its context's total, and each context's freed mass (gamma)."""
    totals: dict[Gram, float] = defaultdict(float)
    freed: dict[Gram, float] = defaultdict(float)
    for gram, count in counts.items():
        totals[gram[:-1]] += count
        freed[gram[:-1]] += ds[min(count, 3) - 1]
    shares = {g: (c - ds[min(c, 3) - 1]) / totals[g[:-1]] for g, c in counts.items()}
    gammas = {h: freed[h] / totals[h] for h in totals}
    return shares, gammas


# -- ARPA ---------------------------------------------------------------------------------------------


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else NO_PROB


def arpa_lines(model: NgramModel) -> Iterable[str]:
    """The model in ARPA text format (log10 probabilities and backoff weights, n-grams sorted)."""
    levels = [dict(level) for level in model.probs]
    levels[0][(BOS,)] = 0.0  # listed (it carries a backoff) but never predicted
    yield ""
    yield "\\data\\"
    for n, level in enumerate(levels, 1):
        yield f"ngram {n}={len(level)}"
    for n, level in enumerate(levels, 1):
        yield ""
        yield f"\\{n}-grams:"
        backoff = model.backoffs[n - 1] if n < model.order else {}
        for gram in sorted(level):
            prob = NO_PROB if gram == (BOS,) else _log10(level[gram])
            line = f"{prob:.6f}\t{' '.join(gram)}"
            if gram in backoff:
                line += f"\t{_log10(backoff[gram]):.6f}"
            yield line
    yield ""
    yield "\\end\\"


class ArpaError(ValueError):
    """An ARPA file that cannot be read; the message names the line."""


@dataclass
class ArpaModel:
    """An ARPA file read back: log10 probabilities and backoffs by n-gram; scores by the backoff rule."""

    order: int
    logprobs: dict[Gram, float]
    logbackoffs: dict[Gram, float]

    @property
    def words(self) -> set[str]:
        return {g[0] for g in self.logprobs if len(g) == 1}

    def score(self, context: Gram, word: str) -> float:
        """log10 p(word | context); unknown words are scored as ``<unk>``."""
        if (word,) not in self.logprobs:
            word = UNK
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        total = 0.0
        while True:
            found = self.logprobs.get((*context, word))
            if found is not None:
                return total + found
            if not context:
                return total + self.logprobs.get((UNK,), NO_PROB)
            total += self.logbackoffs.get(context, 0.0)
            context = context[1:]


def read_arpa(lines: Iterable[str]) -> ArpaModel:
    """Parse ARPA text; raises ArpaError naming the first malformed line."""
    declared: dict[int, int] = {}
    logprobs: dict[Gram, float] = {}
    logbackoffs: dict[Gram, float] = {}
    section, seen = "", Counter()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            section = "end"
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            section = line[1:].split("-")[0]
            if not section.isdigit():
                raise ArpaError(f"line {number}: bad section header {line!r}")
        elif section == "data" and line.startswith("ngram "):
            n, _, total = line[6:].partition("=")
            declared[int(n)] = int(total)
        elif section.isdigit():
            n = int(section)
            parts = line.split()
            if len(parts) not in (n + 1, n + 2):
                raise ArpaError(f"line {number}: expected {n} words and a log probability: {line!r}")
            try:
                gram = tuple(parts[1 : n + 1])
                logprobs[gram] = float(parts[0])
                if len(parts) == n + 2:
                    logbackoffs[gram] = float(parts[-1])
            except ValueError:
                raise ArpaError(f"line {number}: not a number in {line!r}") from None
            seen[n] += 1
        else:
            raise ArpaError(f"line {number}: unexpected {line!r}")
    if section != "end" or not declared:
        raise ArpaError("not an ARPA file: no \\data\\ header or no \\end\\ marker")
    for n, total in declared.items():
        if seen[n] != total:
            raise ArpaError(f"the header declares {total} {n}-grams but the file lists {seen[n]}")
    return ArpaModel(max(declared), logprobs, logbackoffs)
