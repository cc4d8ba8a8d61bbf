"""Long audio for CTC models, in bounded memory: stream a file, cut it into overlapping windows, keep each
window's middle logits, and turn the kept frames into words with times and subtitles.

A window is ``chunk`` samples: ``context`` samples on each side are only there so the model hears what
surrounds the middle (the stride idea of transformers' ASR pipeline); the logits of those contexts are
dropped, and the kept middles tile the file exactly, so a word at a window's edge is neither lost nor
doubled. Every boundary is a multiple of the model's hop (the product of its convolution strides), so a
window's frame j is the file's frame ``start / hop + j``. numpy (and soundfile/soxr to read) only: the unit
tests drive it with hand-made logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ctc_tui.runner.audio import _opened, to_mono


@dataclass(frozen=True)
class Window:
    """One model input: samples ``[start, end)`` of the (resampled) file, of which ``[keep_start,
    keep_end)`` are its own; ``last`` when it ends the file (its kept frames run to its end)."""

    start: int
    end: int
    keep_start: int
    keep_end: int
    last: bool


#: Blank frames (in seconds) that part two words, and where ``--lm`` cuts the file into segments.
PAUSE_SECONDS = 0.4


def frame_hop(config) -> int:
    """Samples per output frame: the product of the model's convolution strides."""
    return math.prod(getattr(config, "conv_stride", None) or (1,))


def receptive_field(config) -> int:
    """The fewest samples that give one output frame (kernels and strides of the feature encoder)."""
    field = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        field = (field - 1) * stride + kernel
    return field


#: The most context (seconds) on each side of a window: a CTC model's letters depend on little more, and
#: every second of context is heard twice (by this window and the next).
MAX_CONTEXT_SECONDS = 1.0


def window_sizes(chunk_seconds: float, rate: int, hop: int, field: int) -> tuple[int, int]:
    """(chunk, context) in samples, multiples of ``hop``: a sixth of the chunk on each side (as the
    transformers pipeline's default) up to ``MAX_CONTEXT_SECONDS``, at least two frames and the
    receptive ``field`` (so every kept frame is one the window's model input fully covers)."""
    sixth = min(int(chunk_seconds * rate) // 6, int(MAX_CONTEXT_SECONDS * rate)) // hop
    context = max(sixth, 2, -(-field // hop)) * hop
    chunk = max(int(chunk_seconds * rate) // hop * hop, 2 * context + hop)
    return chunk, context


class Chunker:
    """Windows of a stream of samples fed in blocks of any size; holds at most one window's samples."""

    def __init__(self, chunk: int, context: int, hop: int) -> None:
        if context % hop or chunk % hop or chunk - 2 * context < hop:
            raise ValueError(f"chunk {chunk} and context {context} must be multiples of {hop}, chunk > 2x")
        self.step, self.context = chunk - 2 * context, context
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # file offset of buffer[0]
        self.pos = 0  # the next window's keep_start

    def feed(self, block: np.ndarray) -> Iterator[tuple[Window, np.ndarray]]:
        """The windows complete once ``block`` is added."""
        self.buffer = np.concatenate([self.buffer, np.asarray(block, dtype=np.float32)])
        while self.buffer_start + len(self.buffer) >= self.pos + self.step + self.context:
            yield self._take(self.pos + self.step + self.context, last=False)

    def finish(self) -> Iterator[tuple[Window, np.ndarray]]:
        """The last window (none when the stream was empty or already ended on a kept boundary)."""
        total = self.buffer_start + len(self.buffer)
        if self.pos < total:
            yield self._take(total, last=True)

    def _take(self, end: int, last: bool) -> tuple[Window, np.ndarray]:
        start = max(self.pos - self.context, 0)
        window = Window(start, end, self.pos, min(self.pos + self.step, end), last)
        samples = self.buffer[start - self.buffer_start : end - self.buffer_start]
        self.pos += self.step
        drop = max(self.pos - self.context, 0) - self.buffer_start
        if drop > 0:
            self.buffer, self.buffer_start = self.buffer[drop:], self.buffer_start + drop
        return window, samples


def plan(total: int, chunk: int, context: int, hop: int, block: int = 4096) -> list[Window]:
    """The windows of a ``total``-sample stream fed in ``block``-sample blocks (for tests and the bench)."""
    chunker, windows = Chunker(chunk, context, hop), []
    for offset in range(0, total, block):
        windows += [w for w, _ in chunker.feed(np.zeros(min(block, total - offset), np.float32))]
    return windows + [w for w, _ in chunker.finish()]


def kept(logits: np.ndarray, window: Window, hop: int) -> np.ndarray:
    """A window's own frames: those of its context dropped (the last window keeps all it has left)."""
    first = (window.keep_start - window.start) // hop
    if window.last:
        return logits[first:]
    return logits[first : (window.keep_end - window.start) // hop]


def stream(path: str, target_rate: int, block_seconds: float = 2.0) -> Iterator[np.ndarray]:
    """A file's audio as mono float32 blocks at ``target_rate``: read block by block (soundfile),
    down-mixed and resampled by soxr's streaming resampler (what any block holds depends only on what
    came before). Unreadable or malformed files raise ``audio.AudioError`` naming them."""
    import soxr

    with _opened(path) as audio:
        rate = int(audio.samplerate)
        resampler = (
            None if rate == target_rate else soxr.ResampleStream(rate, target_rate, 1, "float32", "HQ")
        )
        for block in audio.blocks(max(int(block_seconds * rate), 1), dtype="float32", always_2d=True):
            mono = to_mono(block)
            yield mono if resampler is None else resampler.resample_chunk(mono)
        if resampler is not None:
            yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


@dataclass(frozen=True)
class Token:
    """A token of a decoded path and the first and last frame it was emitted on."""

    id: int
    first: int
    last: int


def greedy_tokens(logprobs: np.ndarray, blank: int) -> list[Token]:
    """The best path: the best token per frame, runs merged, blanks dropped, with their frames."""
    best = logprobs.argmax(axis=-1)
    if len(best) == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], best[1:] != best[:-1]]))
    ends = np.append(starts[1:], len(best)) - 1
    ids = best[starts]
    keep = ids != blank
    return [Token(*run) for run in zip(ids[keep].tolist(), starts[keep].tolist(), ends[keep].tolist())]


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


def words_of(
    tokens: Iterable[Token],
    texts,
    delimiter: int,
    frame_seconds: float,
    offset: int = 0,
    pause: int | None = None,
) -> list[Word]:
    """Words of a token path: a word starts at its first token's first frame and ends after its last
    token's last frame; ``offset`` frames are added (a segment's place in the file). With ``pause``, more
    than that many frames between two tokens also end a word (a model trained on single utterances
    emits no delimiter across the silence between two of them)."""
    words: list[Word] = []
    current: list[Token] = []

    def close() -> None:
        if current:
            text = "".join(texts[t.id] for t in current)
            first, last = current[0].first + offset, current[-1].last + offset + 1
            words.append(Word(text, round(first * frame_seconds, 3), round(last * frame_seconds, 3)))
            current.clear()

    for token in tokens:
        if current and pause is not None and token.first - current[-1].last > pause:
            close()
        if token.id == delimiter:
            close()
        else:
            current.append(token)
    close()
    return words


def segments(
    logprobs: np.ndarray, blank: int, min_gap: int = 10, max_frames: int = 1500
) -> list[tuple[int, int]]:
    """Frame ranges to beam-search one at a time: cut in the middle of each run of ``min_gap`` or more
    blank frames (pauses), and anything longer than ``max_frames`` again at its longest blank run (or
    hard, when it has none): prefix beam search costs grow with the prefix."""
    best = logprobs.argmax(axis=-1)
    cuts = [0]
    for start, end in _blank_runs(best, blank):
        if end - start >= min_gap and 0 < start and end < len(best):
            cuts.append((start + end) // 2)
    cuts.append(len(best))
    out: list[tuple[int, int]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        out += _split_long(best, blank, a, b, max_frames)
    return [(a, b) for a, b in out if b > a]


def _blank_runs(best: np.ndarray, blank: int) -> list[tuple[int, int]]:
    is_blank = np.concatenate([[False], best == blank, [False]])
    edges = np.flatnonzero(np.diff(is_blank.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _split_long(best: np.ndarray, blank: int, a: int, b: int, max_frames: int) -> list[tuple[int, int]]:
    if b - a <= max_frames:
        return [(a, b)]
    runs = [(s + a, e + a) for s, e in _blank_runs(best[a:b], blank) if s > 0 and e + a < b]
    cut = (lambda s, e: (s + e) // 2)(*max(runs, key=lambda r: r[1] - r[0])) if runs else a + max_frames
    return _split_long(best, blank, a, cut, max_frames) + _split_long(best, blank, cut, b, max_frames)


def align(logprobs: np.ndarray, ids: list[int], blank: int) -> list[Token] | None:
    """The most likely CTC path that spells ``ids`` (Viterbi over blank-interleaved states), as tokens
    with their frames; None when ``logprobs`` has too few frames for it."""
    if not ids:
        return []
    states = np.full(2 * len(ids) + 1, blank)
    states[1::2] = ids
    n, frames = len(states), len(logprobs)
    skip = np.zeros(n, dtype=bool)  # a token state may be reached from two states back
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(n, -np.inf)
    score[:2] = logprobs[0, states[:2]]
    back = np.zeros((frames, n), dtype=np.int8)
    for t in range(1, frames):
        one = np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        moves = np.stack([score, one, two])
        back[t] = moves.argmax(axis=0)
        score = moves.max(axis=0) + logprobs[t, states]
    end = n - 1 if score[n - 1] >= score[n - 2] else n - 2
    if not np.isfinite(score[end]):
        return None
    path = np.zeros(frames, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        path[t] = end
        end -= back[t, end]
    return [
        Token(int(states[s]), int(np.flatnonzero(path == s)[0]), int(np.flatnonzero(path == s)[-1]))
        for s in range(1, n, 2)
    ]


def srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def cues(
    words: list[Word], max_chars: int = 42, max_seconds: float = 5.0, max_gap: float = 1.0
) -> list[tuple[float, float, str]]:
    """Words grouped into subtitle cues: a new cue when the line would pass ``max_chars``, the cue
    ``max_seconds``, or the pause before a word ``max_gap``."""
    out: list[tuple[float, float, str]] = []
    group: list[Word] = []
    for word in words:
        if group:
            text = " ".join(w.word for w in group) + " " + word.word
            if (
                len(text) > max_chars
                or word.end - group[0].start > max_seconds
                or word.start - group[-1].end > max_gap
            ):
                out.append((group[0].start, group[-1].end, " ".join(w.word for w in group)))
                group = []
        group.append(word)
    if group:
        out.append((group[0].start, group[-1].end, " ".join(w.word for w in group)))
    return out


def srt(words: list[Word]) -> str:
    """SubRip text: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each."""
    blocks = [
        f"{i}\n{srt_time(a)} --> {srt_time(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues(words), 1)
    ]
    return "\n".join(blocks)
