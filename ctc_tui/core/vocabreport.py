"""The vocabulary report: every character of the normalised transcripts with its count, the rare ones
(fewer than a threshold: a stray Cyrillic letter in German data, an emoji) with the transcripts they
occur in, and how the transcripts fit a model's existing vocabulary.

``ctc-tui check --vocab`` prints it, the wizard's text step shows it, and the runner uses ``rare_chars``
for ``data.drop_rare_char_clips``. Standard library only.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ctc_tui.core.textnorm import missing_chars

#: Transcripts kept per rare character.
EXAMPLES = 3
#: The least training text (characters) in which a rare character is worth a warning: in a handful of
#: transcripts most characters are rare.
MIN_TEXT = 1000


def describe_char(ch: str) -> str:
    """``'ß' U+00DF LATIN SMALL LETTER SHARP S``: a character people can tell from its look-alikes."""
    name = unicodedata.name(ch, "") or unicodedata.category(ch)
    shown = ch if ch.isprintable() and not unicodedata.combining(ch) else " "
    return f"'{shown}' U+{ord(ch):04X} {name}"


def count_chars(texts: Iterable[str]) -> Counter[str]:
    """How often each character (the space excepted) occurs in ``texts``."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    counts.pop(" ", None)
    return counts


def rare_chars(texts: Iterable[str], threshold: int) -> set[str]:
    """The characters that occur fewer than ``threshold`` times in ``texts``."""
    return {ch for ch, n in count_chars(texts).items() if n < threshold}


@dataclass
class VocabReport:
    """Characters of a split's normalised transcripts: counts, and the rare ones with examples."""

    counts: Counter[str]
    threshold: int
    examples: dict[str, list[str]] = field(default_factory=dict)  # rare character -> transcripts

    @property
    def judgeable(self) -> bool:
        """Whether there is text enough (``MIN_TEXT`` characters) for rarity to mean something."""
        return sum(self.counts.values()) >= MIN_TEXT

    @property
    def rare(self) -> list[str]:
        """The rare characters, rarest first."""
        return sorted(self.examples, key=lambda ch: (self.counts[ch], ch))

    def lines(self) -> list[str]:
        """The report as text: one line per character (most frequent first), then the rare ones."""
        out = [f"{len(self.counts)} characters (the space not counted):"]
        for ch, n in sorted(self.counts.items(), key=lambda item: (-item[1], item[0])):
            flag = "  rare" if ch in self.examples else ""
            out.append(f"  {n:>8}  {describe_char(ch)}{flag}")
        for ch in self.rare:
            out.append(f"rare {describe_char(ch)} ({self.counts[ch]}x) in:")
            out += [f"    {text}" for text in self.examples[ch]]
        return out


def vocab_report(texts: Sequence[str], threshold: int) -> VocabReport:
    """The report of ``texts`` (normalised transcripts); characters seen fewer than ``threshold`` times
    are rare, each kept with up to ``EXAMPLES`` of its transcripts."""
    counts = count_chars(texts)
    rare = {ch for ch, n in counts.items() if n < threshold}
    examples: dict[str, list[str]] = {ch: [] for ch in rare}
    if rare:
        for text in texts:
            for ch in rare.intersection(text):
                if len(examples[ch]) < EXAMPLES:
                    examples[ch].append(text)
    return VocabReport(counts, threshold, examples)


def misfit_summary(texts: Iterable[str], vocab: Mapping[str, int], most: int = 12) -> str:
    """``"ä 12, ß 3"``: the characters of ``texts`` that ``vocab`` lacks, most frequent first ("" when
    every character fits)."""
    missing = missing_chars(texts, vocab)
    shown = ", ".join(f"{ch} {n}" for ch, n in missing.most_common(most))
    more = len(missing) - most
    return shown + (f" and {more} more" if more > 0 else "")


def upper_case_hint(texts: Iterable[str], vocab: Mapping[str, int]) -> str:
    """A hint when the transcripts would fit ``vocab`` upper-cased (English wav2vec2-base-960h's
    vocabulary is upper case): set data.do_lower_case=false."""
    missing = missing_chars(texts, vocab)
    if missing and all(ch.upper() in vocab for ch in missing):
        return "; the model's vocabulary is upper case: set data.do_lower_case=false to keep it"
    return ""
