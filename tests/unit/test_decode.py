"""CTC decoding on hand-made logits: greedy, beam search alone, and beam search whose LM flips a word."""

from __future__ import annotations

import numpy as np
import pytest

from ctc_tui.core import ngram
from ctc_tui.runner import decode

TOKENS = ["a", "c", "e", "h", "s", "t", "u", "|", "[UNK]", "[PAD]"]
VOCAB = decode.Vocab(TOKENS, blank=TOKENS.index("[PAD]"), delimiter=TOKENS.index("|"))


def frames(*steps: dict[str, float]) -> np.ndarray:
    """Logits: one frame per step, each the given token probabilities (the rest spread thinly)."""
    out = np.full((len(steps), len(TOKENS)), 1e-4)
    for row, probs in zip(out, steps, strict=True):
        for token, p in probs.items():
            row[TOKENS.index(token)] = p
    return np.log(out / out.sum(axis=1, keepdims=True))


def spell(text: str, confusions: dict[int, dict[str, float]] | None = None) -> np.ndarray:
    """Each character of text (space = delimiter) for one frame, a blank frame after each."""
    steps: list[dict[str, float]] = []
    for i, ch in enumerate(text):
        steps.append((confusions or {}).get(i, {"|" if ch == " " else ch: 0.95}))
        steps.append({"[PAD]": 0.95})
    return frames(*steps)


def lm(*sentences: str, order: int = 3) -> ngram.ArpaModel:
    model = ngram.estimate([s.split() for s in sentences], order)
    return ngram.read_arpa(ngram.arpa_lines(model))


def test_greedy_merges_repeats_and_drops_blanks():
    logits = frames({"c": 0.9}, {"c": 0.9}, {"[PAD]": 0.9}, {"a": 0.9}, {"|": 0.9}, {"t": 0.9}, {"t": 0.9})
    assert decode.greedy(logits, VOCAB) == "ca t"


def test_a_blank_between_repeats_keeps_both():
    logits = frames({"t": 0.9}, {"[PAD]": 0.9}, {"t": 0.9})
    assert decode.greedy(logits, VOCAB) == "tt"
    assert decode.beam_search(logits, VOCAB) == "tt"


def test_beam_search_without_lm_agrees_with_greedy_on_clear_logits():
    logits = spell(" the cat sat ")
    assert decode.greedy(logits, VOCAB) == "the cat sat"
    assert decode.beam_search(logits, VOCAB) == "the cat sat"


def test_beam_search_sums_the_paths_of_a_prefix():
    # Frame by frame the best token is blank, blank, "a"... but "a" spread over both frames wins overall.
    logits = frames({"a": 0.4, "[PAD]": 0.6 - 2e-4}, {"a": 0.4, "[PAD]": 0.6 - 2e-4})
    assert decode.greedy(logits, VOCAB) == ""
    assert decode.beam_search(logits, VOCAB) == "a"


def test_the_lm_flips_a_greedy_error_to_the_known_word():
    # "cut" is what the frames say by a little (u 0.55, a 0.40); the LM has only seen "cat".
    logits = spell("the cat sat", {5: {"u": 0.55, "a": 0.40}})
    assert decode.greedy(logits, VOCAB) == "the cut sat"
    assert decode.beam_search(logits, VOCAB) == "the cut sat"
    model = lm("the cat sat", "a cat sat", "the cat", "the hat sat")
    assert decode.beam_search(logits, VOCAB, model, decode.LmWeights(alpha=1.0, beta=0.5)) == "the cat sat"
    # With no weight on the LM the frames decide again.
    assert decode.beam_search(logits, VOCAB, model, decode.LmWeights(alpha=0.0, beta=0.0)) == "the cut sat"


def test_the_lm_scores_the_last_unfinished_word_too():
    logits = spell("the cat", {5: {"u": 0.55, "a": 0.40}})
    model = lm("the cat sat", "the cat")
    assert decode.beam_search(logits, VOCAB, model, decode.LmWeights(1.0, 0.5)) == "the cat"


@pytest.mark.parametrize("text", ["", " ", "  a  ", "|"])
def test_delimiters_alone_or_doubled_make_no_empty_words(text):
    logits = spell(text.replace("|", " ")) if text else frames({"[PAD]": 0.9})
    expected = " ".join(text.replace("|", " ").split())
    assert decode.greedy(logits, VOCAB) == expected
    assert decode.beam_search(logits, VOCAB, lm("a")) == expected


def test_vocab_from_a_tokenizer_like_object():
    class Tok:
        pad_token_id = 9
        word_delimiter_token = "|"

        def get_vocab(self):
            return {t: i for i, t in enumerate(TOKENS)}

    vocab = decode.Vocab.from_tokenizer(Tok())
    assert (vocab.blank, vocab.delimiter, vocab.tokens[0]) == (9, 7, "a")
