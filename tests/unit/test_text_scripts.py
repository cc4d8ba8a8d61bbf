"""Text in any script: Unicode forms, casing pitfalls, typographic punctuation, folds, the vocabulary
report, scripts written without spaces, and the cache keys they must not disturb."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctc_tui.core.preset import validate_data
from ctc_tui.core.textnorm import (
    build_vocab,
    changed_text_settings,
    detect_spaceless,
    is_spaced,
    make_normaliser,
    normaliser_for,
    primary_metric,
)
from ctc_tui.core.vocabreport import describe_char, misfit_summary, rare_chars, upper_case_hint, vocab_report

TYPOGRAPHIC = "„ “ ” « » ‹ › ‘ ’ … – — ¿ ¡ 、 。 ，"


def data(**fields):
    return validate_data({"data": {"dataset_name": "x", **fields}}, "t").data


def test_decomposed_and_composed_umlauts_become_one_character():
    decomposed = "Mu\u0308ller"  # u + combining diaeresis, as some editors write it
    clean = normaliser_for(data())
    assert clean(decomposed) == clean("Müller") == "müller"
    assert len(clean(decomposed)) == 6


def test_nfkc_folds_compatibility_forms_nfc_keeps_them():
    assert normaliser_for(data(unicode_normalization="NFKC"))("ＡＢＣ ﬁx") == "abc fix"
    assert normaliser_for(data())("ＡＢＣ ﬁx") == "ａｂｃ ﬁx"


def test_german_sharp_s_survives_lower_casing_and_capital_sharp_s_lowers_to_it():
    clean = normaliser_for(data())
    assert clean("STRAẞE Straße") == "straße straße"  # casefold() would give "strasse"


def test_dotted_capital_i_lowers_without_a_stray_combining_dot():
    assert normaliser_for(data())("İSTANBUL") == "istanbul"
    assert "\u0307" not in normaliser_for(data())("İ")


def test_turkic_casing_lowers_dotless():
    assert normaliser_for(data(turkic_casing=True))("IŞIK İÇİN") == "ışık için"
    assert normaliser_for(data())("IŞIK") == "işik"  # the default rules: I -> i


def test_case_kept_for_scripts_without_case_and_when_asked():
    assert normaliser_for(data(do_lower_case=False))("Ärger 日本語") == "Ärger 日本語"


def test_remove_punctuation_takes_every_typographic_mark_and_keeps_apostrophes_and_hyphens():
    clean = normaliser_for(data(remove_punctuation=True))
    text = "„Guten Tag“, sagte er — «très» ‹bien› ‘ok’ …  ¿qué? ¡sí! 今日は、晴れ。 好，的 don't Baden-Baden"
    out = clean(text)
    assert not set(TYPOGRAPHIC.replace(" ", "")) & set(out)
    assert out == "guten tag sagte er très bien ok qué sí 今日は晴れ 好的 don't baden-baden"


def test_chars_to_ignore_with_typographic_quotes_is_literal_and_keeps_the_rest():
    clean = normaliser_for(data(chars_to_ignore="„“”«»"))
    assert clean("„Schön“ – «ja»") == "schön – ja"


@given(st.text(alphabet=st.characters(codec="utf-8", categories=["L", "P", "Zs", "N", "S"]), max_size=40))
def test_punctuation_removal_leaves_no_punctuation_but_the_kept(text):
    out = normaliser_for(data(remove_punctuation=True))(text)
    for ch in out:
        assert not unicodedata.category(ch).startswith("P") or ch in "'-"
    assert out == " ".join(out.split())  # whitespace collapsed


@given(st.text(max_size=40))
def test_normalising_twice_changes_nothing(text):
    clean = normaliser_for(data(remove_punctuation=True, char_map={"ß": "ss"}))
    assert clean(clean(text)) == clean(text)


@given(st.sets(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8), st.text(max_size=30))
def test_exactly_the_listed_characters_go(chars, text):
    clean = make_normaliser(sorted(chars), lower=False, unicode_form="NFC")
    listed = {unicodedata.normalize("NFC", c) for c in chars}
    expected = " ".join("".join(c for c in unicodedata.normalize("NFC", text) if c not in listed).split())
    assert clean(text) == expected


def test_char_map_folds_before_removal_and_is_lower_cased_with_the_text():
    clean = normaliser_for(data(char_map={"ß": "ss", "’": "'", "Ё": "Е"}, remove_punctuation=True))
    assert clean("Straße don’t ЁЖ") == "strasse don't еж"


def test_char_map_keys_must_be_single_characters():
    with pytest.raises(Exception, match="char_map keys must be single characters"):
        data(char_map={"ss": "ß"})


def test_vocab_report_counts_and_flags_rare_characters_with_their_transcripts():
    texts = ["straße ist schön"] * 4 + ["hallo жelt", "ok 😀"]
    report = vocab_report(texts, threshold=3)
    assert report.counts["ß"] == 4 and report.counts["ж"] == 1
    assert set(report.rare) >= {"ж", "😀"} and "ß" not in report.rare
    assert report.examples["ж"] == ["hallo жelt"]
    text = "\n".join(report.lines())
    assert "U+0436 CYRILLIC SMALL LETTER ZHE" in text and "rare" in text and "U+1F600" in text
    assert rare_chars(texts, 3) == set(report.rare)


def test_describe_char_names_look_alikes_apart():
    assert describe_char("е") == "'е' U+0435 CYRILLIC SMALL LETTER IE"
    assert describe_char("e") == "'e' U+0065 LATIN SMALL LETTER E"


def test_misfit_summary_and_upper_case_hint():
    english = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'|")}
    assert misfit_summary(["äb ß", "ä"], {"b": 0}) == "ä 2, ß 1"
    assert misfit_summary(["ab"], {"a": 0, "b": 1}) == ""
    assert "do_lower_case=false" in upper_case_hint(["hello world"], english)
    assert upper_case_hint(["hällo"], english) == ""


def test_spaceless_scripts_are_detected_and_latin_is_not():
    assert detect_spaceless(["きょうはいいてんきです", "わたしはがくせいです"])
    assert detect_spaceless(["今天天气很好"]) and detect_spaceless(["สวัสดีครับ"])
    assert not detect_spaceless(["guten tag", "straße"]) and not detect_spaceless(["안녕 하세요"])
    assert not detect_spaceless([""])
    assert is_spaced(data(space_separated=True), ["きょう"]) and not is_spaced(data(), ["きょう"])


def test_word_delimiter_is_not_forced_into_a_spaceless_vocabulary():
    assert "|" not in build_vocab(["きょう", "あした"], spaced=False)
    assert "|" in build_vocab(["きょう あした"], spaced=False)
    assert "|" in build_vocab(["yes"])  # spaced text keeps the reference's order and tokens


def test_primary_metric():
    assert primary_metric(True) == "wer" and primary_metric(False) == "cer"
    assert primary_metric(False, ["wer"]) == "wer"


def test_text_settings_at_their_defaults_leave_cache_keys_alone():
    assert changed_text_settings(data()) == {}
    assert changed_text_settings(data(remove_punctuation=True)) == {"remove_punctuation": True}
