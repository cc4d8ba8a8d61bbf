"""``python -m ctc_tui.runner.transcribe RUN_DIR AUDIO... [--lm] [--chunk-seconds S] [--format F]
[--checkpoint N]``: transcripts of audio files of any length from a trained run dir.

Each file is streamed (soundfile blocks, soxr's streaming resampler; any rate, any channel count),
cut into overlapping windows whose context logits are dropped (runner/longaudio.py), on the device the
run trained on (``load.inference_device``: the CPU, with a note, where this machine lacks it). Greedy
decoding by default; ``--lm`` beam-searches each pause-delimited segment with the run's n-gram LM and
the weights ``ctc-tui eval --lm`` tuned (read as runner/score.py reads them). Word times come from the
CTC frames (the model's hop / sampling rate).
``--format text`` prints ``path<TAB>transcript``; ``json`` one object per file; ``srt`` subtitles. A file
that cannot be read gets one line on stderr naming it; the others are still transcribed, and the exit
status is 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.core import private
from ctc_tui.core.preset import load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.core.rundir import LM_DIR, LM_WEIGHTS, PRESET
from ctc_tui.runner import audio, longaudio
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, log_softmax
from ctc_tui.runner.load import inference_device, load_trained
from ctc_tui.runner.score import ScoreError, model_folder, model_key, read_lm, stored_weights

DEFAULT_CHUNK_SECONDS = 10.0


@dataclass
class Transcriber:
    """A loaded model and how to decode with it."""

    processor: Any
    model: Any
    device: str
    vocab: Vocab
    hop: int
    min_samples: int
    chunk: int
    context: int
    lm: Any = None
    weights: LmWeights | None = None

    @property
    def rate(self) -> int:
        return self.processor.feature_extractor.sampling_rate

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.rate

    @property
    def pause_frames(self) -> int:
        return max(round(longaudio.PAUSE_SECONDS / self.frame_seconds), 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctc-tui transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run dir (or a folder with a CTC model)")
    parser.add_argument("audio", nargs="+", help="audio files (flac, wav, ogg, ...), any length")
    parser.add_argument("--lm", action="store_true", help="beam search with the run's n-gram LM")
    parser.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS, help="window length")
    parser.add_argument("--format", choices=("text", "json", "srt"), default="text")
    parser.add_argument("--checkpoint", type=int, help="use checkpoint-N instead of the final model")
    return parser.parse_args(argv)


def lm_and_weights(run_dir: Path, folder: Path) -> tuple[Any, LmWeights]:
    """The run's LM and the weights tuned for this model; ScoreError saying how to make them."""
    lm, arpa_sha = read_lm(run_dir)
    weights = stored_weights(run_dir, arpa_sha, model_key(folder))
    if weights is None:
        checkpoint = "" if folder == run_dir else f" --checkpoint {folder.name.split('-')[-1]}"
        raise ScoreError(
            f"{run_dir / LM_DIR / LM_WEIGHTS} has no LM weights tuned for this model and LM; "
            f"make them with ctc-tui eval {run_dir} --lm{checkpoint}"
        )
    return lm, weights


def load(args: argparse.Namespace, pieces: bool = True) -> Transcriber:
    """The model, its processor and vocabulary, the LM when asked for, and the window sizes. ``pieces``
    False keeps the feature encoder whole (for bench/transcribe.py's comparison)."""
    run_dir: Path = args.run_dir
    if args.chunk_seconds <= 0:
        raise ScoreError(f"--chunk-seconds {args.chunk_seconds}: give a positive number of seconds")
    folder = model_folder(run_dir, args.checkpoint)
    preset_file = run_dir / PRESET
    if preset_file.is_file():  # a run dir (a plain model folder is taken too): mine and private
        private.check_run_dir(run_dir)
    device, note = inference_device(load_preset(preset_file) if preset_file.is_file() else None)
    if note:
        print(note, file=sys.stderr, flush=True)
    lm, weights = lm_and_weights(run_dir, folder) if args.lm else (None, None)
    trained = load_trained(run_dir, folder if folder != run_dir else None, device)
    config = trained.model.config
    hop = longaudio.frame_hop(config)
    rate = trained.processor.feature_extractor.sampling_rate
    min_samples = longaudio.receptive_field(config)
    if pieces and device == "cpu":
        encode_in_pieces(trained.model, hop, min_samples)
    chunk, context = longaudio.window_sizes(args.chunk_seconds, rate, hop, min_samples)
    vocab = Vocab.from_tokenizer(trained.processor.tokenizer)
    return Transcriber(
        trained.processor, trained.model, device, vocab, hop, min_samples, chunk, context, lm, weights
    )


#: Frames of the convolutional feature encoder computed at a time on the CPU (1 s at 20 ms frames).
ENCODER_PIECE_FRAMES = 50


def encode_in_pieces(model, hop: int, field: int, piece_frames: int = ENCODER_PIECE_FRAMES) -> bool:
    """Make the model's convolutional feature encoder run over ``piece_frames`` frames at a time, and
    say whether it was done. On a CPU its per-second cost grows ~10x once a layer's output outgrows
    the cache (past ~2 s of audio: the first layer's 64+ channels, normalised frame by frame); in
    pieces, a long window costs what short clips do. Exact only where each frame depends on its own
    ``field`` samples alone: ``feat_extract_norm: layer`` (group norm spans the whole input: left
    whole)."""
    import torch

    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    encoder = getattr(base, "feature_extractor", None)
    if encoder is None or getattr(model.config, "feat_extract_norm", None) != "layer":
        return False
    whole = encoder.forward

    def forward(input_values):
        frames = (input_values.shape[-1] - field) // hop + 1
        if frames <= 2 * piece_frames:
            return whole(input_values)
        parts = []
        for first in range(0, frames, piece_frames):
            last = min(first + piece_frames, frames) - 1
            parts.append(whole(input_values[..., first * hop : last * hop + field]))
        return torch.cat(parts, dim=-1)

    encoder.forward = forward
    return True


def window_logprobs(t: Transcriber, samples: np.ndarray) -> np.ndarray:
    """The model's log probabilities [frames, vocab] for one window (padded to one frame if shorter)."""
    import torch

    if len(samples) < t.min_samples:
        samples = np.pad(samples, (0, t.min_samples - len(samples)))
    inputs = t.processor.feature_extractor(samples, sampling_rate=t.rate, return_tensors="pt").to(t.device)
    with torch.inference_mode():
        logits = t.model(**inputs).logits[0].float().cpu().numpy()
    return log_softmax(logits).astype(np.float32)


def file_logprobs(t: Transcriber, path: str) -> tuple[np.ndarray, float]:
    """A whole file's kept frames, window by window, and its duration in seconds."""
    chunker = longaudio.Chunker(t.chunk, t.context, t.hop)
    parts, total = [], 0
    for block in longaudio.stream(path, t.rate):
        total += len(block)
        parts += [longaudio.kept(window_logprobs(t, s), w, t.hop) for w, s in chunker.feed(block)]
    parts += [longaudio.kept(window_logprobs(t, s), w, t.hop) for w, s in chunker.finish()]
    width = len(t.vocab.tokens)
    return (np.concatenate(parts) if parts else np.zeros((0, width), np.float32)), total / t.rate


def lm_words(t: Transcriber, logprobs: np.ndarray) -> list[longaudio.Word]:
    """Beam search + LM segment by segment, each segment's words placed by aligning them to its frames."""
    index = {text: i for i, text in enumerate(t.vocab.tokens)}
    words: list[longaudio.Word] = []
    for a, b in longaudio.segments(logprobs, t.vocab.blank, min_gap=t.pause_frames):
        piece = logprobs[a:b]
        text = beam_search(piece, t.vocab, t.lm, t.weights)
        ids = []
        for word in text.split():
            ids += [*(index[c] for c in word), t.vocab.delimiter]
        tokens = longaudio.align(piece, ids[:-1], t.vocab.blank)
        if tokens is None:  # not spellable in these frames (cannot happen for a beam's path): greedy
            tokens = longaudio.greedy_tokens(piece, t.vocab.blank)
        words += longaudio.words_of(tokens, t.vocab.tokens, t.vocab.delimiter, t.frame_seconds, a)
    return words


def transcribe(t: Transcriber, path: str) -> dict:
    logprobs, duration = file_logprobs(t, path)
    if t.lm is not None:
        words = lm_words(t, logprobs)
    else:
        tokens = longaudio.greedy_tokens(logprobs, t.vocab.blank)
        pause = t.pause_frames
        words = longaudio.words_of(tokens, t.vocab.tokens, t.vocab.delimiter, t.frame_seconds, pause=pause)
    text = " ".join(w.word for w in words)
    return {"path": path, "text": text, "duration": round(duration, 3), "words": [asdict(w) for w in words]}


def render(result: dict, form: str) -> str:
    if form == "json":
        return json.dumps(result)
    if form == "srt":
        return longaudio.srt([longaudio.Word(**w) for w in result["words"]])
    return f"{result['path']}\t{result['text']}"


def run(args: argparse.Namespace) -> int:
    t = load(args)
    code = 0
    for path in args.audio:
        if not Path(path).is_file():
            print(f"error: {path}: no such file", file=sys.stderr, flush=True)
            code = 1
            continue
        try:
            result = transcribe(t, path)
        except (audio.AudioError, OSError) as exc:
            message = str(exc) if path in str(exc) else f"{path}: {exc}"
            print(f"error: {message}", file=sys.stderr, flush=True)
            code = 1
            continue
        print(render(result, args.format), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ScoreError, PresetError, private.PrivacyError) as exc:
        print(exc.render() if isinstance(exc, PresetError) else f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
