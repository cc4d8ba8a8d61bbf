"""The Kneser-Ney estimate against hand-computed values, and its ARPA file written and read back."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from ctc_tui.core import ngram


def test_discounts_follow_the_count_of_counts():
    counts = Counter({("a",): 1, ("b",): 1, ("c",): 1, ("d",): 1, ("e",): 2, ("f",): 2, ("g",): 3, ("h",): 4})
    # n1=4, n2=2, n3=1, n4=1: Y = 4/(4+4) = 0.5; D1 = 1-2Y*2/4, D2 = 2-3Y*1/2, D3 = 3-4Y*1/1
    assert ngram.discounts(counts) == pytest.approx((0.5, 1.25, 1.0))
    # counts above 4 are not n4: with ("i",): 9 added the values stay the same
    assert ngram.discounts(counts + Counter({("i",): 9})) == pytest.approx((0.5, 1.25, 1.0))


def test_discounts_fall_back_when_a_count_of_counts_is_zero():
    assert ngram.discounts(Counter({("a",): 1, ("b",): 2})) == ngram.FALLBACK_DISCOUNTS


def test_continuation_counts_replace_raw_counts_below_the_top_order():
    raw = ngram.count_ngrams([["a", "b"], ["a"]], 2)
    adjusted = ngram.adjusted_counts(raw)
    assert raw[0][("a",)] == 2 and raw[0][("</s>",)] == 2
    # a: preceded only by <s>; </s>: by b and by a
    assert adjusted[0] == Counter({("a",): 1, ("b",): 1, ("</s>",): 2})
    assert adjusted[1] == raw[1]


def test_bigram_probabilities_match_hand_computed_kneser_ney():
    # Corpus "a b" / "a" (fallback discounts 0.5, 1.0, 1.5). Unigrams from continuation counts
    # a=1, b=1, </s>=2 (total 4, freed 2.0, gamma 0.5, uniform over a, b, </s>, <unk> = 0.125):
    # p(a) = 0.5/4 + 0.125 = 0.25, p(</s>) = 1/4 + 0.125 = 0.375, p(<unk>) = 0.125.
    model = ngram.estimate([["a", "b"], ["a"]], order=2)
    uni = model.probs[0]
    assert uni[("a",)] == pytest.approx(0.25)
    assert uni[("b",)] == pytest.approx(0.25)
    assert uni[("</s>",)] == pytest.approx(0.375)
    assert uni[("<unk>",)] == pytest.approx(0.125)
    # context <s>: c(<s> a) = 2 -> (2-1)/2 + gamma 0.5 * p(a) = 0.625; context a: (1-0.5)/2 + 0.5 p(w)
    assert model.prob(("<s>",), "a") == pytest.approx(0.625)
    assert model.prob(("<s>",), "b") == pytest.approx(0.125)
    assert model.prob(("a",), "b") == pytest.approx(0.375)
    assert model.prob(("a",), "</s>") == pytest.approx(0.4375)
    assert model.prob(("a",), "a") == pytest.approx(0.125)
    assert model.backoffs[0][("a",)] == pytest.approx(0.5)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_is_a_distribution(order):
    sentences = [s.split() for s in ["one two three", "two three four", "one two", "four four one", "three"]]
    model = ngram.estimate(sentences, order)
    words = sorted({w for s in sentences for w in s} | {"</s>", "<unk>"})
    contexts = [()] + [g for level in model.probs[:-1] for g in level]
    for context in contexts:
        assert math.fsum(model.prob(context, w) for w in words) == pytest.approx(1.0), context


def test_arpa_round_trip_reproduces_the_model():
    sentences = [s.split() for s in ["the cat sat", "the cat", "a cat sat down", "the dog sat"]]
    model = ngram.estimate(sentences, 3)
    text = "\n".join(ngram.arpa_lines(model))
    assert text.splitlines()[1] == "\\data\\" and text.rstrip().endswith("\\end\\")
    assert "-99.000000\t<s>\t" in text
    arpa = ngram.read_arpa(text.splitlines())
    assert arpa.order == 3 and {"the", "cat", "</s>", "<unk>"} <= arpa.words
    for context, word in [
        (("<s>", "the"), "cat"),
        (("the", "cat"), "down"),
        (("dog",), "cat"),
        ((), "zebra"),
    ]:
        expected = math.log10(model.prob(context, word if word in arpa.words else "<unk>"))
        assert arpa.score(context, word) == pytest.approx(expected, abs=2e-6)


def test_a_malformed_arpa_names_the_line():
    with pytest.raises(ngram.ArpaError, match="line 5"):
        ngram.read_arpa(["\\data\\", "ngram 1=1", "", "\\1-grams:", "oops"])
    with pytest.raises(ngram.ArpaError, match="declares 2 1-grams"):
        ngram.read_arpa(["\\data\\", "ngram 1=2", "\\1-grams:", "-1.0\ta", "\\end\\"])


def test_no_text_is_refused():
    with pytest.raises(ValueError, match="no text"):
        ngram.estimate([], 3)
