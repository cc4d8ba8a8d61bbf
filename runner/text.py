"""Transcript normalisation and the character vocabulary (see ctc_tui.textnorm, which both halves use)."""

from ctc_tui.textnorm import build_vocab, make_normaliser, missing_chars

__all__ = ["build_vocab", "make_normaliser", "missing_chars"]
