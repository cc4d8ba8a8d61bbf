"""Transcript normalisation and the character vocabulary, shared by the runner and the app's preview.

The reference builds a regex character class from ``chars_to_ignore`` without escaping it, so the
seed's list ``",?.!-;:...`` turns ``!-;`` into a range that silently deletes apostrophes, digits and
hyphens ("DON'T" -> "DONT"). Here every listed character is removed literally and nothing else is.
Standard library only: the login node's wizard previews exactly what the runner will train on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable


def make_normaliser(chars_to_ignore: Iterable[str] | None, lower: bool = True) -> Callable[[str], str]:
    """A function that removes exactly the listed characters, lower-cases, and collapses whitespace."""
    table = str.maketrans("", "", "".join(chars_to_ignore or ()))

    def normalise(text: str) -> str:
        cleaned = text.translate(table)
        if lower:
            cleaned = cleaned.lower()
        return " ".join(cleaned.split())

    return normalise


def build_vocab(
    texts: Iterable[str], word_delimiter_token: str = "|", unk_token: str = "[UNK]", pad_token: str = "[PAD]"
) -> dict[str, int]:
    """Character vocabulary in the reference's order: sorted characters, space as the word delimiter,
    then the unknown and padding tokens (the padding token is the CTC blank)."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    chars.discard(" ")
    vocab = {ch: i for i, ch in enumerate(sorted(chars))}
    vocab[word_delimiter_token] = len(vocab)
    vocab[unk_token] = len(vocab)
    vocab[pad_token] = len(vocab)
    return vocab


def missing_chars(texts: Iterable[str], vocab: dict[str, int]) -> Counter[str]:
    """Characters of ``texts`` the vocabulary cannot express (they become the unknown token)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(ch for ch in text if ch != " " and ch not in vocab)
    return counts
