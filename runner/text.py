"""Transcript normalisation and the character vocabulary (see ctc_tui.core.textnorm, which both halves
use)."""

from ctc_tui.core.textnorm import build_vocab, make_normaliser, missing_chars

__all__ = ["build_vocab", "make_normaliser", "missing_chars"]
