"""Transcript normalisation and the character vocabulary, shared by the runner and the app's preview.

One pipeline, in this order: Unicode normalisation (NFC, or NFKC), lower-casing (optional; Turkic
dotted/dotless i on request), the preset's character map (``ß`` -> ``ss`` style folds), removal of
``chars_to_ignore`` and (optionally) of every Unicode punctuation character, and whitespace collapsed.

The reference builds a regex character class from ``chars_to_ignore`` without escaping it, so the
seed's list ``",?.!-;:...`` turns ``!-;`` into a range that silently deletes apostrophes, digits and
hyphens ("DON'T" -> "DONT"). Here every listed character is removed literally and nothing else is: a
set of characters, never a regex, so ``]``, ``-``, ``^`` and ``\\`` are just characters.

Casing: ``str.lower`` (not ``casefold``, which turns German ``ß`` into ``ss`` and so changes spelling);
capital ``ẞ`` lowers to ``ß``. ``İ`` lowers to ``i`` (``str.lower`` would give ``i`` + a combining dot,
a stray token in the vocabulary); with Turkic casing ``I`` lowers to dotless ``ı``.
Standard library only: the login node's wizard previews exactly what the runner will train on.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

UNICODE_FORMS = ("NFC", "NFKC")
#: Punctuation that ``remove_punctuation`` keeps unless told otherwise: apostrophes and hyphens are
#: part of words ("don't", "l'homme", "Baden-Württemberg").
KEEP_PUNCTUATION = "'-"


class _PunctuationTable(dict):
    """A ``str.translate`` table that deletes every Unicode punctuation character (categories P*) not in
    ``keep``, deciding each character once, when first seen."""

    def __init__(self, remove: Iterable[str], keep: str, punctuation: bool) -> None:
        super().__init__({ord(ch): None for ch in remove})
        self.keep = set(keep)
        self.punctuation = punctuation

    def __missing__(self, code: int) -> Any:
        ch = chr(code)
        drop = self.punctuation and ch not in self.keep and unicodedata.category(ch).startswith("P")
        self[code] = None if drop else code
        return self[code]


def _lower(text: str, turkic: bool) -> str:
    if turkic:
        text = text.replace("I", "ı")
    return text.replace("İ", "i").lower()


def make_normaliser(
    chars_to_ignore: Iterable[str] | None,
    lower: bool = True,
    *,
    unicode_form: str = "NFC",
    remove_punctuation: bool = False,
    keep_punctuation: str = KEEP_PUNCTUATION,
    char_map: Mapping[str, str] | None = None,
    turkic_casing: bool = False,
) -> Callable[[str], str]:
    """A function that normalises Unicode (``unicode_form``), lower-cases (``lower``), applies
    ``char_map``, removes exactly the listed characters (and, with ``remove_punctuation``, every
    punctuation character but ``keep_punctuation``), and collapses whitespace."""
    if unicode_form not in UNICODE_FORMS:
        raise ValueError(f"unicode_form must be one of {', '.join(UNICODE_FORMS)}, got {unicode_form!r}")

    def unify(text: str) -> str:
        return text if text.isascii() else unicodedata.normalize(unicode_form, text)

    ignored = "".join(unify(ch) for ch in "".join(chars_to_ignore or ()))
    table = _PunctuationTable(ignored, keep_punctuation, remove_punctuation)
    folds: dict[int, str] = {}
    for key, value in (char_map or {}).items():
        key, value = unify(key), unify(value)
        if lower:
            key, value = _lower(key, turkic_casing), _lower(value, turkic_casing)
        if len(key) == 1:
            folds[ord(key)] = value

    def normalise(text: str) -> str:
        cleaned = unify(text)
        if lower:
            cleaned = _lower(cleaned, turkic_casing)
        if folds:
            cleaned = cleaned.translate(folds)
        return " ".join(cleaned.translate(table).split())

    return normalise


def normaliser_for(data: Any) -> Callable[[str], str]:
    """The normaliser of a preset's ``data`` section (any object with its text fields): what the runner,
    the LM builder, ``ctc-tui eval``, the check and the wizard all use."""
    return make_normaliser(
        data.chars_to_ignore,
        data.do_lower_case,
        unicode_form=getattr(data, "unicode_normalization", "NFC"),
        remove_punctuation=getattr(data, "remove_punctuation", False),
        keep_punctuation=getattr(data, "keep_punctuation", KEEP_PUNCTUATION),
        char_map=getattr(data, "char_map", None),
        turkic_casing=getattr(data, "turkic_casing", False),
    )


#: The normalisation fields beyond chars_to_ignore and do_lower_case, with their defaults.
TEXT_DEFAULTS: dict[str, Any] = {
    "turkic_casing": False,
    "unicode_normalization": "NFC",
    "remove_punctuation": False,
    "keep_punctuation": KEEP_PUNCTUATION,
    "char_map": {},
}


def changed_text_settings(data: Any) -> dict[str, Any]:
    """The normalisation fields of ``data`` that differ from their defaults (cache keys and the LM's
    record hold only these, so that those of earlier presets stay what they were)."""
    values = {name: getattr(data, name, default) for name, default in TEXT_DEFAULTS.items()}
    return {name: value for name, value in values.items() if value != TEXT_DEFAULTS[name]}


def build_vocab(
    texts: Iterable[str],
    word_delimiter_token: str = "|",
    unk_token: str = "[UNK]",
    pad_token: str = "[PAD]",
    *,
    spaced: bool = True,
) -> dict[str, int]:
    """Character vocabulary in the reference's order: sorted characters, space as the word delimiter,
    then the unknown and padding tokens (the padding token is the CTC blank). With ``spaced=False``
    (scripts written without spaces) the word delimiter is added only when some text has a space."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    has_space = " " in chars
    chars.discard(" ")
    vocab = {ch: i for i, ch in enumerate(sorted(chars))}
    if spaced or has_space:
        vocab[word_delimiter_token] = len(vocab)
    vocab[unk_token] = len(vocab)
    vocab[pad_token] = len(vocab)
    return vocab


def missing_chars(texts: Iterable[str], vocab: Mapping[str, int]) -> Counter[str]:
    """Characters of ``texts`` the vocabulary cannot express (they become the unknown token)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(ch for ch in text if ch != " " and ch not in vocab)
    return counts


# -- scripts written without spaces -------------------------------------------------------------------

#: Unicode name prefixes of the scripts written without spaces between words.
SPACELESS_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR")


def is_spaceless_char(ch: str) -> bool:
    """Whether ``ch`` belongs to a script written without spaces (Chinese, Japanese, Thai, ...)."""
    return unicodedata.name(ch, "").startswith(SPACELESS_SCRIPTS)


def detect_spaceless(texts: Iterable[str]) -> bool:
    """Whether most letters of ``texts`` belong to scripts written without spaces (then CER, not WER,
    measures a model: a "word" there is a whole sentence)."""
    letters = spaceless = 0
    for text in texts:
        for ch in text:
            if ch.isalpha():
                letters += 1
                spaceless += is_spaceless_char(ch)
    return letters > 0 and spaceless * 2 > letters


def primary_metric(spaced: bool, metrics: Iterable[str] = ("wer", "cer")) -> str:
    """The metric a run is judged by: CER for scripts written without spaces, else WER (whichever of the
    two is computed when only one is)."""
    chosen = list(metrics)
    first = "wer" if spaced else "cer"
    return first if first in chosen or not chosen else chosen[0]


def is_spaced(data: Any, texts: Iterable[str]) -> bool:
    """``data.space_separated`` when the preset says, else detected from (normalised) ``texts``."""
    said = getattr(data, "space_separated", None)
    return bool(said) if said is not None else not detect_spaceless(texts)
