"""Features and labels computed without the processor's per-call overhead (runner/features.py) are the
real Wav2Vec2FeatureExtractor's and Wav2Vec2CTCTokenizer's own, bit for bit; so is what preprocessing
caches, in place in its batch buffer or not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctc_tui.runner import audio as audio_io
from ctc_tui.runner.data import load_raw_split, preprocess
from ctc_tui.runner.features import featuriser, in_place_featuriser, labeller
from ctc_tui.runner.text import make_normaliser
from tests.conftest import make_librispeech
from tests.unit.test_data import _FE, cfg


def _extractor(normalise: bool = True):
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=normalise, return_attention_mask=True
    )


def _tokenizer(tmp_path, vocab: dict[str, int], **kwargs):
    from transformers import Wav2Vec2CTCTokenizer

    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab, ensure_ascii=False))
    return Wav2Vec2CTCTokenizer(str(path), unk_token="[UNK]", pad_token="[PAD]", **kwargs)


def test_wav2vec2_features_are_the_extractors_own_bit_for_bit():
    rng = np.random.default_rng(0)
    for normalise in (True, False):
        fe = _extractor(normalise)
        for size in (1, 7, 40_000, 199_999):
            samples = (rng.standard_normal(size) * 0.1 + 0.02).astype(np.float32)
            expected = np.asarray(fe(samples, sampling_rate=16000).input_values[0], dtype=np.float32)
            ours = featuriser(fe, "input_values", 16000)(samples)
            assert ours.dtype == np.float32 and np.array_equal(ours, expected)
            for offset in (0, 1, 3, 5, 16):  # in place, anywhere in a batch's buffer
                buffer = np.zeros(size + 32, dtype=np.float32)
                view = buffer[offset : offset + size]
                view[:] = samples
                in_place_featuriser(fe, "input_values")(view)
                assert np.array_equal(view, expected)
    samples = rng.standard_normal(1000).astype(np.float32)
    assert np.array_equal(
        featuriser(_FE(), "input_values", 16000)(samples), _FE()(samples, 16000).input_values[0]
    )
    assert in_place_featuriser(_FE(), "input_values") is None  # another extractor is called


def test_labels_are_the_tokenizers_own(tmp_path):
    letters = "abcdefghijklmnopqrstuvwxyz'é"
    vocab = {"[PAD]": 0, "[UNK]": 1, "|": 2, "<": 3, "ch": 4} | {c: i + 5 for i, c in enumerate(letters)}
    tokenizer = _tokenizer(tmp_path, vocab)
    label = labeller(tokenizer)
    rng = np.random.default_rng(1)
    pieces = list("abcxyz'é  ßΣ|<>/s") + ["[UNK]", "[PAD]", "<s>", "</s>", "ch", "[", "]", "<unk>"]
    texts = ["", " ", "  two  spaces  ", "a[UNK]b", "a <s> b", "such", "x" * 500]
    texts += ["".join(rng.choice(pieces, rng.integers(1, 40))) for _ in range(400)]
    for text in texts:
        ids = label(text)
        assert ids.dtype == np.int64 and ids.tolist() == tokenizer(text).input_ids, text


def test_tokenizers_that_change_case_or_are_not_wav2vec2_are_called(tmp_path):
    tokenizer = _tokenizer(tmp_path, {"[PAD]": 0, "[UNK]": 1, "|": 2, "A": 3, "B": 4}, do_lower_case=True)
    for text in ("ab ba", "a[UNK]b", "AB"):
        assert labeller(tokenizer)(text).tolist() == tokenizer(text).input_ids

    class Plain:
        def __call__(self, text):
            return type("Out", (), {"input_ids": [len(text)]})()

    assert labeller(Plain())("abc").tolist() == [3]


@pytest.mark.parametrize(
    "rate, channels, subtype, suffix",
    [(16000, 1, "PCM_16", "flac"), (16000, 2, "PCM_16", "wav"), (22050, 1, "PCM_24", "flac")],
)
def test_load_into_gives_what_load_gives(tmp_path, rate, channels, subtype, suffix):
    import soundfile as sf

    noise = np.random.default_rng(2).standard_normal((int(0.7 * rate), channels)).astype(np.float32) * 0.2
    path = tmp_path / f"clip.{suffix}"
    sf.write(str(path), noise, rate, subtype=subtype)
    expected, expected_rate = audio_io.load(str(path), 16000)
    buffer = np.full(100_000, np.nan, dtype=np.float32)
    asked = []

    def reserve(count):
        asked.append(count)
        return buffer[5 : 5 + count]

    for source in (str(path), {"path": None, "bytes": path.read_bytes()}):
        samples, got_rate = audio_io.load_into(source, 16000, reserve)
        assert got_rate == expected_rate == rate and np.array_equal(samples, expected)
        assert np.shares_memory(samples, buffer) and asked[-1] >= len(expected)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(audio_io.AudioError):
        audio_io.load_into(str(tmp_path / "junk.wav"), 16000, reserve)


def test_the_cache_holds_the_real_processors_output(tmp_path):
    """Preprocessing (features decoded and normalised in its batch buffer, labels looked up) caches what
    the real extractor and tokenizer give for each clip: at 16 kHz (decoded straight into the buffer)
    and at 22.05 kHz (resampled, then copied in), in batches of different sizes."""
    texts = ["HELLO WORLD", "DON'T STOP", "TWENTY-ONE", "IT'S NINE O'CLOCK", "A B C", "ONE TWO"] * 7
    letters = "abcdefghijklmnopqrstuvwxyz'-"
    vocab = {"[PAD]": 0, "[UNK]": 1, "|": 2} | {c: i + 3 for i, c in enumerate(letters)}
    tokenizer = _tokenizer(tmp_path, vocab)
    for rate in (16000, 22050):
        root = tmp_path / str(rate)
        make_librispeech(root, "train", rate=rate, speakers=2, per_chapter=20, texts=texts)  # 0.5-2.4 s
        c = cfg(source="librispeech", dataset_dir=str(root), max_duration_in_seconds=1.45)
        raw = load_raw_split(c, "train")
        normalise = make_normaliser(None, True)
        out = preprocess(raw, "train", normalise, tokenizer, _extractor(), c, f"real-{rate}").dataset
        assert len(out) == 20  # 10 clips of each chapter are over 1.45 s
        by_text = iter(out.with_format("numpy"))
        for path, text in zip(raw.audio, raw.text):
            samples, _ = audio_io.load(path, 16000)
            if len(samples) > 1.45 * 16000:
                continue
            row = next(by_text)
            expected = _extractor()(samples, sampling_rate=16000).input_values[0]
            assert np.array_equal(row["input_values"], np.asarray(expected, dtype=np.float32))
            assert row["labels"].tolist() == tokenizer(normalise(text)).input_ids
