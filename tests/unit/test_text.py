"""Transcript cleaning: listed characters go, literally; everything else stays."""

import re

from ctc_tui.core.preset import validate_data
from ctc_tui.runner.text import build_vocab, make_normaliser, missing_chars

SEED_CHARS = '",?.!-;:\\"“%‘”"'  # what the seed's shell command hands the reference script


def reference_clean(text: str, chars: list[str]) -> str:
    """The reference script's cleaning, verbatim in behaviour: an unescaped regex character class."""
    return re.sub(f"[{''.join(chars).replace(' ', '')}]", "", text).lower() + " "


def seed_chars() -> list[str]:
    return validate_data(
        {"data": {"dataset_name": "x", "chars_to_ignore": SEED_CHARS}}, "t"
    ).data.chars_to_ignore


def test_reference_regex_range_defect_is_real():
    # "!-;" inside [...] is the range 0x21..0x3B: it eats apostrophes and digits.
    assert reference_clean("DON'T STOP AT 42", seed_chars()).strip() == "dont stop at"


def test_literal_cleaning_keeps_unlisted_apostrophes_and_digits():
    clean = make_normaliser(seed_chars())
    assert clean("DON'T STOP AT 42, “OK”!") == "don't stop at 42 ok"
    # '-' is in the seed's list, so it is removed, as listed; unlisted characters survive.
    assert clean("TWENTY-ONE O'CLOCK") == "twentyone o'clock"
    assert make_normaliser([",", "."])("TWENTY-ONE, O'CLOCK.") == "twenty-one o'clock"


def test_characters_that_are_regex_syntax_are_plain_characters():
    clean = make_normaliser(["]", "^", "\\", "[", "*"])
    assert clean("a]b^c\\d[e*f") == "abcdef"
    assert make_normaliser(["a-c"])("a-b-c") == "b"  # a string entry lists characters a, -, c


def test_whitespace_is_collapsed_and_case_optional():
    assert make_normaliser([","])("  HELLO ,  WORLD  ") == "hello world"
    assert make_normaliser([], lower=False)("Hello  World") == "Hello World"


def test_vocab_in_reference_order_with_specials():
    vocab = build_vocab(["ab c", "b'a"])
    assert list(vocab) == ["'", "a", "b", "c", "|", "[UNK]", "[PAD]"]
    assert vocab["[PAD]"] == len(vocab) - 1
    assert missing_chars(["abz"], vocab) == {"z": 1}
