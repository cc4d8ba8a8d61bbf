"""Long audio (runner/longaudio.py): the window plan and its stride arithmetic, dropping the context
logits, frames to words and times, pause segments, forced alignment, streaming reads, subtitles."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from ctc_tui.runner import audio, longaudio
from ctc_tui.runner.longaudio import Token, Window, Word

HOP, FIELD = 320, 400  # wav2vec2's feature encoder
WAV2VEC2 = SimpleNamespace(conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2))


def test_hop_and_receptive_field_come_from_the_model_config():
    assert longaudio.frame_hop(WAV2VEC2) == HOP
    assert longaudio.receptive_field(WAV2VEC2) == FIELD
    assert longaudio.frame_hop(SimpleNamespace(conv_stride=(4, 2))) == 8


def test_window_sizes_are_hop_multiples_with_a_sixth_of_context_up_to_a_second():
    assert longaudio.window_sizes(3.0, 16000, HOP, FIELD) == (48000, 8000)  # 150 frames, 25 each side
    chunk, context = longaudio.window_sizes(20.0, 16000, HOP, FIELD)
    assert (chunk, context) == (320000, 16000)  # 1000 frames; a sixth would be 166, capped at 50
    assert chunk % HOP == 0 == context % HOP
    tiny_chunk, tiny_context = longaudio.window_sizes(0.01, 16000, HOP, FIELD)
    assert tiny_context >= FIELD and tiny_chunk - 2 * tiny_context >= HOP  # never an empty middle


@pytest.mark.parametrize("total", [0, 1, 399, 320, 6400, 31999, 32000, 32001, 10 * 32000 + 123])
@pytest.mark.parametrize("block", [1000, 4096, 100_000])
def test_the_kept_middles_tile_the_file_exactly(total, block):
    chunk, context = 32000, 6400
    windows = longaudio.plan(total, chunk, context, HOP, block)
    if total == 0:
        assert windows == []
        return
    assert windows[0].keep_start == 0 and windows[-1].keep_end == total
    assert [w.last for w in windows] == [False] * (len(windows) - 1) + [True]
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.keep_end == b.keep_start  # no gap, no overlap: nothing lost, nothing doubled
    for w in windows:
        assert w.start == max(w.keep_start - context, 0) and w.start % HOP == 0
        assert w.end - w.start <= chunk and w.end <= total
        assert w.last or w.end == w.keep_end + context  # a full right context before the end


def test_a_short_file_is_one_window():
    assert longaudio.plan(5000, 32000, 6400, HOP) == [Window(0, 5000, 0, 5000, True)]


def test_the_chunker_yields_the_samples_of_each_window_and_holds_little():
    ramp = np.arange(100_003, dtype=np.float32)
    chunker = longaudio.Chunker(32000, 6400, HOP)
    rng = np.random.default_rng(0)
    offset, seen = 0, []
    while offset < len(ramp):
        size = int(rng.integers(1, 9000))
        for window, samples in chunker.feed(ramp[offset : offset + size]):
            seen.append((window, samples))
        assert len(chunker.buffer) <= 32000 + 9000
        offset += size
    seen += list(chunker.finish())
    for window, samples in seen:
        assert np.array_equal(samples, ramp[window.start : window.end])


def model_frames(n_samples: int) -> int:
    """Frames wav2vec2's encoder gives for n samples (no padding)."""
    return (n_samples - FIELD) // HOP + 1


@pytest.mark.parametrize("total", [FIELD, 30000, 32000 * 4 + 7, 32000 * 7 - 1])
def test_dropping_the_context_logits_merges_into_the_unchunked_frames(total):
    """A fake model that is right in the middle of a window and wrong in its contexts: the merged
    frames are exactly the right ones, as many as the whole file in one window would give."""
    rng = np.random.default_rng(1)
    vocab = 7
    truth = rng.integers(0, vocab, model_frames(total))
    chunk, context = 32000, 6400
    merged = []
    for w in longaudio.plan(total, chunk, context, HOP):
        frames = model_frames(w.end - w.start)
        labels = truth[w.start // HOP : w.start // HOP + frames].copy()
        first = (w.keep_start - w.start) // HOP
        labels[:first] = (labels[:first] + 1) % vocab  # the contexts are wrong
        if not w.last:
            labels[(w.keep_end - w.start) // HOP :] = (labels[(w.keep_end - w.start) // HOP :] + 1) % vocab
        merged.append(longaudio.kept(np.eye(vocab)[labels], w, HOP))
    assert np.array_equal(np.concatenate(merged).argmax(axis=1), truth)


TEXTS = ["<pad>", "|", "o", "n", "e", "t", "w"]
BLANK, DELIM = 0, 1


def logprobs_of(ids: list[int]) -> np.ndarray:
    out = np.full((len(ids), len(TEXTS)), -10.0)
    out[np.arange(len(ids)), ids] = 0.0
    return out


def test_greedy_words_take_their_times_from_the_frames():
    # frames:        0  1  2  3  4  5  6  7  8  9 10 11
    path = logprobs_of([0, 2, 2, 3, 4, 1, 0, 5, 0, 6, 2, 0])
    tokens = longaudio.greedy_tokens(path, BLANK)
    assert tokens[0] == Token(2, 1, 2) and tokens[-1] == Token(2, 10, 10)
    words = longaudio.words_of(tokens, TEXTS, DELIM, 0.02, offset=100)
    assert words == [Word("one", 2.02, 2.1), Word("two", 2.14, 2.22)]


def test_repeated_letters_need_a_blank_between_them():
    tokens = longaudio.greedy_tokens(logprobs_of([3, 3, 0, 3, 1, 2]), BLANK)
    assert [t.id for t in tokens] == [3, 3, 1, 2]
    assert [w.word for w in longaudio.words_of(tokens, TEXTS, DELIM, 0.02)] == ["nn", "o"]


def test_greedy_tokens_are_the_runs_of_the_best_path():
    """Every run of one best token is one token (blank runs none), first and last frame included; an
    empty window has none."""
    rng = np.random.default_rng(1)
    best = rng.integers(0, 4, size=500)  # many runs, repeats and blanks (0)
    tokens = longaudio.greedy_tokens(logprobs_of(best.tolist()), BLANK)
    runs, start = [], 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            runs.append(Token(int(best[start]), start, t - 1))
            start = t
    assert tokens == [r for r in runs if r.id != BLANK] and len(tokens) > 100
    assert longaudio.greedy_tokens(np.zeros((0, len(TEXTS))), BLANK) == []


def test_forced_alignment_places_a_transcript_on_its_frames():
    path = logprobs_of([0, 2, 2, 3, 4, 1, 0, 5, 0, 6, 2, 0])
    aligned = longaudio.align(path, [2, 3, 4, 1, 5, 6, 2], BLANK)
    assert aligned == longaudio.greedy_tokens(path, BLANK)
    assert longaudio.align(path[:2], [2, 3, 4], BLANK) is None  # three tokens cannot fit two frames
    assert longaudio.align(logprobs_of([2, 2]), [2, 2], BLANK) is None  # a repeat needs a blank between
    assert longaudio.align(path, [], BLANK) == []


def test_segments_cut_in_long_pauses_and_split_what_is_too_long():
    ids = [2] * 5 + [0] * 12 + [3] * 5 + [0] * 3 + [4] * 5
    spans = longaudio.segments(logprobs_of(ids), BLANK, min_gap=10)
    assert spans == [(0, 11), (11, len(ids))]  # the 12-frame pause, cut in its middle; not the 3-frame one
    capped = longaudio.segments(logprobs_of(ids), BLANK, min_gap=100, max_frames=20)
    assert capped[0][0] == 0 and capped[-1][1] == len(ids) and all(b - a <= 20 for a, b in capped)
    assert all(a == b0 for (_, a), (b0, _) in zip(capped, capped[1:], strict=False))
    hard = longaudio.segments(logprobs_of([2, 3] * 20), BLANK, max_frames=15)
    assert [b - a for a, b in hard] == [15, 15, 10]


def test_srt_times_and_cues():
    assert longaudio.srt_time(3661.5) == "01:01:01,500"
    assert longaudio.srt_time(0.0004) == "00:00:00,000"
    words = [Word("one", 0.5, 0.7), Word("two", 0.8, 1.0), Word("three", 2.5, 2.9)]
    assert longaudio.srt(words) == (
        "1\n00:00:00,500 --> 00:00:01,000\none two\n\n2\n00:00:02,500 --> 00:00:02,900\nthree\n"
    )
    many = [Word(f"word{i:02d}", i * 0.3, i * 0.3 + 0.2) for i in range(40)]
    cues = longaudio.cues(many)
    assert " ".join(text for _, _, text in cues) == " ".join(w.word for w in many)
    assert all(len(text) <= 42 and end - start <= 5.0 for start, end, text in cues)
    assert len(cues) > 1


def test_stream_reads_any_rate_and_channels_like_a_whole_read(tmp_path):
    rng = np.random.default_rng(2)
    stereo = (0.1 * rng.standard_normal((44100 * 5 + 17, 2))).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    streamed = np.concatenate(list(longaudio.stream(str(path), 16000, block_seconds=0.3)))
    whole, rate = audio.load(str(path), 16000)
    assert rate == 44100 and abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.abs(streamed[100 : n - 100] - whole[100 : n - 100]).max() < 1e-3


def test_stream_of_a_malformed_file_names_it(tmp_path):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio at all" * 10)
    with pytest.raises(audio.AudioError, match="bad.flac"):
        list(longaudio.stream(str(bad), 16000))


# -- the feature encoder in pieces ---------------------------------------------------------------------


def tiny_model(norm: str):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    from ctc_tui.core.architectures import SHAPES

    shape = {**SHAPES["wav2vec2-tiny"], "feat_extract_norm": norm, "vocab_size": 12}
    return Wav2Vec2ForCTC(Wav2Vec2Config(**shape)).eval()


@pytest.mark.parametrize("seconds", [4.0, 7.31])
def test_the_feature_encoder_in_pieces_gives_the_whole_windows_logits(seconds):
    """Run piece by piece, the convolutions see the same samples for every frame (each frame's own
    receptive field): the same frames, the same logits, for windows of any length."""
    import torch

    from ctc_tui.runner.transcribe import encode_in_pieces

    torch.manual_seed(0)
    model = tiny_model("layer")
    samples = torch.randn(1, int(seconds * 16000))
    with torch.inference_mode():
        whole = model(samples).logits
        hop, field = longaudio.frame_hop(model.config), longaudio.receptive_field(model.config)
        encoder, calls = model.wav2vec2.feature_extractor, []
        original = encoder.forward
        encoder.forward = lambda x: calls.append(x.shape[-1]) or original(x)
        assert encode_in_pieces(model, hop, field, piece_frames=20)
        pieces = model(samples).logits
    assert pieces.shape == whole.shape
    torch.testing.assert_close(pieces, whole, rtol=1e-5, atol=1e-5)
    frames = whole.shape[1]
    assert len(calls) == -(-frames // 20) and max(calls) == 19 * hop + field  # 20 frames a piece


def test_a_group_norm_encoder_is_left_whole():
    """Group norm (wav2vec2-base's first layer) normalises each channel over the whole input: pieces
    would change it, so that encoder is left as it is."""
    from ctc_tui.runner.transcribe import encode_in_pieces

    model = tiny_model("group")
    before = model.wav2vec2.feature_extractor.forward
    assert not encode_in_pieces(model, 320, 400)
    assert model.wav2vec2.feature_extractor.forward == before
