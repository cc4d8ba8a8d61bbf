"""Transcript normalisation and the character vocabulary (see ctc_tui.core.textnorm, which both halves
use), and the runner's text steps: dropping training clips with rare characters."""

from __future__ import annotations

from collections.abc import Callable

from ctc_tui.core.sources import RawSplit, fingerprint
from ctc_tui.core.textnorm import build_vocab, make_normaliser, missing_chars, normaliser_for
from ctc_tui.core.vocabreport import describe_char, rare_chars

__all__ = ["build_vocab", "drop_rare_clips", "make_normaliser", "missing_chars", "normaliser_for"]


def drop_rare_clips(split: RawSplit, normalise: Callable[[str], str], threshold: int) -> tuple[RawSplit, str]:
    """``split`` without the clips whose normalised transcript holds a character seen fewer than
    ``threshold`` times in the split, and a log line saying what went ("" when nothing did). Local
    splits lose the clips; a hub split's audio is a lazy column, so those clips' text is emptied instead
    (preprocessing drops clips without text)."""
    texts = [normalise(t) for t in split.text]
    rare = rare_chars(texts, threshold)
    drop = [i for i, text in enumerate(texts) if rare.intersection(text)]
    if not drop:
        return split, ""
    gone = set(drop)
    stamp = fingerprint(split.fingerprint, "drop-rare", sorted(rare))
    if isinstance(split.audio, list):
        keep = [i for i in range(len(texts)) if i not in gone]
        kept = RawSplit([split.audio[i] for i in keep], [split.text[i] for i in keep], stamp)
    else:
        kept = RawSplit(split.audio, ["" if i in gone else t for i, t in enumerate(split.text)], stamp)
    shown = ", ".join(describe_char(ch) for ch in sorted(rare)[:5]) + (" ..." if len(rare) > 5 else "")
    message = (
        f"data.drop_rare_char_clips: dropped {len(drop)} training clip(s) holding characters seen fewer "
        f"than {threshold} times: {shown}"
    )
    return kept, message
