"""Greedy vs beam search + LM decoding on a trained demo run: clips/s, real-time factor, WER gain.

The model's log probabilities for the preset's eval split are computed once (torch, any threads); the
decoders then run on them in this one process, one core (pure Python + numpy, no threads). Builds the
run's LM (``RUN_DIR/lm/``) if it has none, and tunes alpha/beta as ``ctc-tui eval --lm`` does (reusing
weights it stored). Goal: beam search + LM at >= 20x real time on one core.

Usage: python bench/decode.py RUN_DIR [--checkpoint N] [--repeats 3] [--beam-width 16]
Last line: ``decode greedy_clips_per_s=X lm_clips_per_s=Y lm_realtime=Zx wer=A wer_lm=B gain=C``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.core.preset import load_preset  # noqa: E402
from ctc_tui.core.rundir import PRESET  # noqa: E402
from ctc_tui.lmbuild import ARPA, LM_DIR, build  # noqa: E402
from ctc_tui.runner import score  # noqa: E402
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, greedy  # noqa: E402


def timed(decode, split, repeats: int) -> tuple[float, list[str]]:
    """The best of ``repeats`` wall times for decoding every clip, and the transcripts."""
    best, hyps = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        hyps = [decode(lp) for lp in split.logprobs]
        best = min(best, time.perf_counter() - start)
    return best, hyps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beam-width", type=int, default=16)
    args = parser.parse_args()
    run_dir = args.run_dir
    if not (run_dir / LM_DIR / ARPA).is_file():
        build(run_dir, [])
    preset = load_preset(run_dir / PRESET)
    folder = score.model_folder(run_dir, args.checkpoint)
    processor, model, device = score.load_model(preset, run_dir, folder)
    vocab = Vocab.from_tokenizer(processor.tokenizer)
    split = score.split_logits(preset, preset.data.eval_split_name, processor, model, device)
    lm, sha = score.read_lm(run_dir)
    weights = score.stored_weights(run_dir, sha) or score.tune(split, vocab, lm)[0]
    weights = LmWeights(weights.alpha, weights.beta)

    greedy_s, greedy_hyps = timed(lambda lp: greedy(lp, vocab), split, args.repeats)
    lm_s, lm_hyps = timed(
        lambda lp: beam_search(lp, vocab, lm, weights, beam_width=args.beam_width), split, args.repeats
    )
    clips, audio_s = len(split.logprobs), split.seconds
    wer, cer = score.error_rates(split.references, greedy_hyps)
    wer_lm, cer_lm = score.error_rates(split.references, lm_hyps)
    gain = (wer - wer_lm) / wer if wer else 0.0
    print(
        f"{clips} clips, {audio_s:.1f} s of audio ({folder.name}, alpha {weights.alpha}, beta {weights.beta})"
    )
    for name, seconds, w, c in (("greedy", greedy_s, wer, cer), ("beam + LM", lm_s, wer_lm, cer_lm)):
        speed = f"{clips / seconds:9.1f} clips/s {audio_s / seconds:9.1f}x real time"
        print(f"{name:10} {speed}  WER {w:.4f} CER {c:.4f}")
    print(
        f"decode greedy_clips_per_s={clips / greedy_s:.1f} lm_clips_per_s={clips / lm_s:.1f} "
        f"lm_realtime={audio_s / lm_s:.1f}x wer={wer:.4f} wer_lm={wer_lm:.4f} gain={gain:.1%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
