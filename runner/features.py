"""What one clip becomes in the preprocessing cache: its features and its label ids, the model's own
processor's results computed without its per-call overhead.

The reference script calls the feature extractor and the tokenizer once a clip (in a datasets ``map``).
For the two the runner meets on wav2vec2-style models, Wav2Vec2FeatureExtractor and Wav2Vec2CTCTokenizer,
that call is mostly overhead around a little numpy or a character lookup: tenths of a millisecond each,
against ~2.4 ms to decode a LibriSpeech-length FLAC clip (bench/preprocess.py's corpus). So here the
same result is computed directly: the extractor's numpy operations in the same order (in place, in the
batch's buffer), and each character's ids asked of the tokenizer once. Any other extractor or tokenizer
is called as it is. The results are the same bit for bit (tests/unit/test_features.py pins both
against the real classes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _is_transformers(obj: Any, name: str) -> bool:
    """Is ``obj`` exactly transformers' class ``name`` (not a subclass that may change its behaviour)?
    Judged by name, so that this module does not import transformers."""
    kind = type(obj)
    return kind.__name__ == name and kind.__module__.startswith("transformers.")


def in_place_featuriser(feature_extractor: Any, input_name: str) -> Callable[[np.ndarray], None] | None:
    """For Wav2Vec2FeatureExtractor (wav2vec2, HuBERT, XLS-R: raw samples, optionally normalised to zero
    mean and unit variance), a function that turns a float32 mono clip into its features in place: the
    extractor's own ``(x - x.mean()) / np.sqrt(x.var() + 1e-7)``, written back into ``x``. None for any
    other extractor (its features need not be the clip's shape)."""
    if not (
        _is_transformers(feature_extractor, "Wav2Vec2FeatureExtractor")
        and getattr(feature_extractor, "feature_size", None) == 1
        and input_name == "input_values"
    ):
        return None
    if not feature_extractor.do_normalize:
        return lambda x: None  # the samples as float32 are the features

    def normalise(x: np.ndarray) -> None:
        mean, scale = x.mean(), np.sqrt(x.var() + 1e-7)
        np.subtract(x, mean, out=x)
        np.divide(x, scale, out=x)

    return normalise


def featuriser(feature_extractor: Any, input_name: str, rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """One mono clip's features as a new float32 array: ``in_place_featuriser`` on a copy where it
    applies (without the extractor's padding, attention mask and conversions), else the extractor's call."""
    in_place = in_place_featuriser(feature_extractor, input_name)
    if in_place is not None:

        def direct(samples: np.ndarray) -> np.ndarray:
            features = np.array(samples, dtype=np.float32)
            in_place(features)
            return features

        return direct

    def call(samples: np.ndarray) -> np.ndarray:
        out = feature_extractor(samples, sampling_rate=rate)
        return np.asarray(getattr(out, input_name)[0], dtype=np.float32)

    return call


def labeller(tokenizer: Any) -> Callable[[str], np.ndarray]:
    """One normalised transcript's label ids (``tokenizer(text).input_ids``) as an int64 array.

    Wav2Vec2CTCTokenizer (what the runner builds, and what wav2vec2 CTC checkpoints ship) splits a text
    into characters, a space becoming the word delimiter, except where one of its added or special tokens
    ("[UNK]", "<s>", a vocabulary entry of several characters) occurs in it. So a character's ids do not
    depend on its neighbours in a text where no such token occurs: they are asked of the tokenizer once,
    the first time the character is met, and looked up after that. A text in which such a token occurs,
    a tokenizer with ``do_lower_case`` (it changes case around those tokens) and every other tokenizer go
    through the tokenizer's own call."""

    def call(text: str) -> np.ndarray:
        return np.asarray(tokenizer(text).input_ids, dtype=np.int64)

    if not _is_transformers(tokenizer, "Wav2Vec2CTCTokenizer") or getattr(tokenizer, "do_lower_case", False):
        return call
    whole = [t for t in {*tokenizer.added_tokens_encoder, *tokenizer.all_special_tokens} if t]
    starts = {t[0] for t in whole}
    ids: dict[str, tuple[int, ...]] = {}

    def lookup(text: str) -> np.ndarray:
        if not starts.isdisjoint(text) and any(t in text for t in whole):
            return call(text)
        for char in set(text).difference(ids):
            ids[char] = tuple(tokenizer(char).input_ids)
        return np.fromiter((i for char in text for i in ids[char]), dtype=np.int64)

    return lookup
