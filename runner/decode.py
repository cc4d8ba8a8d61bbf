"""CTC decoding of one clip's logits ([T, V] numpy arrays): greedy, and prefix beam search with a word
n-gram language model (an ``ArpaModel`` read from ``RUN_DIR/lm/``).

Beam search keeps, for each distinct collapsed token prefix, the log probability of the paths ending in
a blank and of those ending in its last token (Hannun et al.'s CTC prefix search). When the word
delimiter closes a word, the prefix's score gains ``alpha * ln p_LM(word | previous words) + beta``; at
the end the unfinished word and ``</s>`` are scored. Frames whose tokens are all below
``token_min_logp`` but the blank cost one pass over the beams. numpy only (no torch): the bench and the
unit tests decode hand-made logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ctc_tui.core.ngram import BOS, EOS, ArpaModel

LN10 = math.log(10.0)
NEG = -math.inf


@dataclass(frozen=True)
class Vocab:
    """What decoding needs of a tokenizer: each id's text, the blank (padding) id, the word delimiter."""

    tokens: Sequence[str]
    blank: int
    delimiter: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> Vocab:
        vocab = tokenizer.get_vocab()
        tokens = [""] * (max(vocab.values()) + 1)
        for text, index in vocab.items():
            tokens[index] = text
        delimiter = vocab.get(getattr(tokenizer, "word_delimiter_token", "|"), -1)
        return cls(tokens, tokenizer.pad_token_id, delimiter)

    def words(self, ids: Sequence[int]) -> list[str]:
        """The words of a collapsed, blank-free id sequence."""
        text = "".join(" " if i == self.delimiter else self.tokens[i] for i in ids)
        return text.split()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(logits: np.ndarray, vocab: Vocab) -> str:
    """Best token per frame, repeats merged, blanks dropped."""
    best = logits.argmax(axis=-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    ids = [int(i) for i in best[keep] if i != vocab.blank]
    return " ".join(vocab.words(ids))


def _lse(a: float, b: float) -> float:
    """ln(e^a + e^b) of two Python floats (numpy's ufunc costs ~1 us a call here)."""
    if a == NEG:
        return b
    if b == NEG:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


@dataclass(frozen=True)
class LmWeights:
    """The language model's weight (alpha, on its natural-log probability) and the word bonus (beta)."""

    alpha: float = 0.5
    beta: float = 1.0
    #: Added to the LM's natural-log probability of a word it has never seen (as pyctcdecode's
    #: ``unk_score_offset``): a misspelling must cost more than a small vocabulary's <unk> probability.
    unk_offset: float = -10.0


class _WordScorer:
    """alpha * ln p(word | history) + beta, cached by (history, word)."""

    def __init__(self, lm: ArpaModel, weights: LmWeights) -> None:
        self.lm, self.weights = lm, weights
        self.keep = max(lm.order - 1, 0)
        self.known = lm.words | {EOS}
        self.prefixes = {w[:i] for w in self.known for i in range(1, len(w) + 1)}
        self.cache: dict[tuple[tuple[str, ...], str], float] = {}

    def __call__(self, history: tuple[str, ...], word: str) -> float:
        key = (history, word)
        found = self.cache.get(key)
        if found is None:
            logp = self.lm.score(history, word) * LN10
            if word not in self.known:
                logp += self.weights.unk_offset
            found = self.weights.alpha * logp + (0.0 if word == EOS else self.weights.beta)
            self.cache[key] = found
        return found

    def partial(self, word: str) -> float:
        """The unfinished word's score: the unknown-word offset as soon as no known word starts so."""
        return 0.0 if not word or word in self.prefixes else self.weights.alpha * self.weights.unk_offset

    def advance(self, history: tuple[str, ...], word: str) -> tuple[str, ...]:
        return (*history, word)[-self.keep :] if self.keep else ()


@dataclass
class _Beam:
    """One prefix: CTC log probabilities (ending in blank / in its last token) and its LM state."""

    blank: float
    token: float
    lm: float  # accumulated LM score of its finished words
    history: tuple[str, ...]  # the LM context: last order-1 finished words (with <s>)
    word: str  # the unfinished word's text
    partial: float = 0.0  # the unfinished word's score (_WordScorer.partial), for ranking only

    def ctc(self) -> float:
        return _lse(self.blank, self.token)

    def rank(self) -> float:
        return _lse(self.blank, self.token) + self.lm + self.partial


def beam_search(
    logits: np.ndarray,
    vocab: Vocab,
    lm: ArpaModel | None = None,
    weights: LmWeights = LmWeights(),
    beam_width: int = 16,
    token_min_logp: float = -8.0,
    beam_prune_logp: float = -10.0,
) -> str:
    """The best transcript by CTC prefix beam search, scored with the LM when one is given. A frame's
    tokens below ``token_min_logp`` are not tried; nor is a token that would put a prefix more than
    ``-beam_prune_logp`` below the frame's best prefix."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64))
    scorer = _WordScorer(lm, weights) if lm is not None else None
    start = (BOS,) if scorer else ()
    beams: dict[tuple[int, ...], _Beam] = {(): _Beam(0.0, NEG, 0.0, start, "")}
    for frame in logp:
        found = [
            (float(frame[i]), int(i)) for i in np.flatnonzero(frame >= token_min_logp) if i != vocab.blank
        ]
        candidates = [(token, p) for p, token in sorted(found, reverse=True)]
        beams = _step(beams, frame, candidates, vocab, scorer, beam_prune_logp)
        beams = _prune(beams, beam_width)
    best = max(beams.items(), key=lambda item: _final_score(item[1], scorer))
    return " ".join(vocab.words(best[0]))


def _step(
    beams: dict[tuple[int, ...], _Beam],
    frame: np.ndarray,
    candidates: list[tuple[int, float]],
    vocab: Vocab,
    scorer: _WordScorer | None,
    prune: float,
) -> dict[tuple[int, ...], _Beam]:
    """One frame: every beam through a blank, its last token again, and each candidate token (tried
    best first, until the extension would fall ``-prune`` below the best beam)."""
    blank_p = float(frame[vocab.blank])
    out: dict[tuple[int, ...], _Beam] = {}
    floor = max(beam.rank() for beam in beams.values()) + prune
    for prefix, beam in beams.items():
        total = beam.ctc()
        stay = _get(out, prefix, beam)
        stay.blank = _lse(stay.blank, total + blank_p)
        last = prefix[-1] if prefix else None
        if last is not None:  # the last token again, merged into the prefix
            stay.token = _lse(stay.token, beam.token + float(frame[last]))
        reach = floor - beam.rank()
        for token, p in candidates:
            if p < reach:
                break
            if token == vocab.delimiter and (last is None or last == vocab.delimiter):
                if last is None:  # a leading delimiter: no word yet, so no change
                    stay.blank = _lse(stay.blank, total + p)
                else:  # a second delimiter in a row: the same word gap
                    stay.token = _lse(stay.token, beam.blank + p)
                continue
            came_from = beam.blank if token == last else total
            child = _get(out, (*prefix, token), beam, token, vocab, scorer)
            child.token = _lse(child.token, came_from + p)
    return out


def _get(
    out: dict[tuple[int, ...], _Beam],
    prefix: tuple[int, ...],
    parent: _Beam,
    token: int | None = None,
    vocab: Vocab | None = None,
    scorer: _WordScorer | None = None,
) -> _Beam:
    """The beam for ``prefix`` in ``out``, made from ``parent`` (extended by ``token``) when new."""
    beam = out.get(prefix)
    if beam is not None:
        return beam
    lm, history, word, partial = parent.lm, parent.history, parent.word, parent.partial
    if token is not None and vocab is not None:
        if token == vocab.delimiter:
            if scorer is not None and word:
                lm += scorer(history, word)
                history = scorer.advance(history, word)
            word, partial = "", 0.0
        else:
            word += vocab.tokens[token]
            partial = scorer.partial(word) if scorer is not None else 0.0
    beam = out[prefix] = _Beam(NEG, NEG, lm, history, word, partial)
    return beam


def _final_score(beam: _Beam, scorer: _WordScorer | None) -> float:
    score = beam.ctc() + beam.lm
    if scorer is None:
        return score
    history = beam.history
    if beam.word:
        score += scorer(history, beam.word)
        history = scorer.advance(history, beam.word)
    return score + scorer(history, EOS)


def _prune(beams: dict[tuple[int, ...], _Beam], width: int) -> dict[tuple[int, ...], _Beam]:
    if len(beams) <= width:
        return beams
    ranked = sorted(beams.items(), key=lambda item: item[1].rank(), reverse=True)
    return dict(ranked[:width])
