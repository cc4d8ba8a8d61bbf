"""``python -m ctc_tui.runner.score RUN_DIR [--split NAME]... [--checkpoint N] [--lm]``: WER and CER of a
trained run on splits of its preset's data, greedy and with beam search + the run's n-gram LM.

``ctc-tui eval`` runs this in a child process (the CLI never imports torch). Each split is read by the
runner's own readers (``data.load_raw_split``); its clips are filtered as preprocessing filters them
(empty transcripts, the duration limits; ``data.max_eval_samples`` on the eval split) and the references
normalised as the labels were. The model's log probabilities are computed once per clip and decoded
greedily and, with ``--lm``, by ``decode.beam_search``. The LM's weights (alpha, beta) are tuned by a
small grid search on the preset's eval split the first time and kept in ``RUN_DIR/lm/weights.json``
with the ARPA's SHA-256 and the model's key (a rebuilt LM, or another checkpoint, is tuned again); they
are never tuned on another split. Prints one JSON object per split on stdout and writes it to
``RUN_DIR/eval/<split>.json``; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.core import checkpoints
from ctc_tui.core.ngram import ArpaError, ArpaModel, read_arpa
from ctc_tui.core.preset import Preset, load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.core.rundir import EVAL_DIR, LM_ARPA, LM_DIR, LM_WEIGHTS, PRESET
from ctc_tui.core.sources import DataError
from ctc_tui.core.textnorm import make_normaliser
from ctc_tui.runner import audio
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, greedy, log_softmax
from ctc_tui.runner.load import has_trained_model, inference_device, load_trained

#: The alpha/beta grid tried on the eval split (alpha 0 = no LM: tuning can always fall back to it).
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
BETAS = (0.0, 0.5, 1.0, 2.0)


class ScoreError(Exception):
    """Input that cannot be scored; the message names it and the fix."""


@dataclass
class SplitLogits:
    """One split's clips: normalised references, per-clip log probabilities [T, V], total seconds."""

    name: str
    references: list[str]
    logprobs: list[np.ndarray]
    seconds: float


def model_folder(run_dir: Path, checkpoint: int | None) -> Path:
    """The run dir (its final model) or its ``checkpoint-N``; ScoreError when it holds no model, or a
    checkpoint that is not complete."""
    folder = run_dir / f"checkpoint-{checkpoint}" if checkpoint is not None else run_dir
    if not has_trained_model(folder):
        if checkpoint is not None:
            found = sorted(p.name for p in run_dir.glob("checkpoint-*"))
            raise ScoreError(
                f"{folder} holds no model; checkpoints here: {', '.join(found) or 'none'} (--checkpoint N)"
            )
        raise ScoreError(
            f"{run_dir} holds no trained model (config.json + weights); train one with ctc-tui run"
        )
    if checkpoint is not None and not checkpoints.is_complete(folder):
        found = "; ".join(checkpoints.problems(folder))
        raise ScoreError(f"{folder.name} is incomplete ({found}); choose another --checkpoint N")
    return folder


def load_model(preset: Preset, run_dir: Path, folder: Path) -> tuple[Any, Any, str]:
    """The run's processor, the model in ``folder`` and the device, by the runner's load step (the
    device training used, or the CPU with a note where this machine lacks it: ``load.inference_device``)."""
    device, note = inference_device(preset)
    if note:
        print(note, file=sys.stderr, flush=True)
    trained = load_trained(run_dir, folder, device)
    return trained.processor, trained.model, device


def split_logits(preset: Preset, name: str, processor: Any, model: Any, device: str) -> SplitLogits:
    """Read a split, keep the clips preprocessing keeps, and compute each clip's log probabilities."""
    import torch

    from ctc_tui.runner.data import limit, load_raw_split

    cfg = preset.data
    normalise = make_normaliser(cfg.chars_to_ignore, cfg.do_lower_case)
    try:
        raw = load_raw_split(cfg, name, preset.model.token)
    except DataError as exc:
        raise ScoreError(f"split '{name}': {exc}") from None
    if name == cfg.eval_split_name:  # the clips the run's own evaluation scores
        raw = limit(raw, cfg.max_eval_samples)
    fe = processor.feature_extractor
    rate = fe.sampling_rate
    refs, logprobs, seconds = [], [], 0.0
    for index, (clip, text) in enumerate(zip(raw.audio, raw.text, strict=True)):
        ref = normalise(text)
        try:
            samples, _ = audio.load(clip, rate)
        except audio.AudioError as exc:
            raise ScoreError(f"split '{name}', clip {index}: {exc}") from None
        duration = len(samples) / rate
        if not ref or not cfg.min_duration_in_seconds <= duration <= cfg.max_duration_in_seconds:
            continue
        inputs = fe(samples, sampling_rate=rate, return_tensors="pt").to(device)
        with torch.inference_mode():
            logits = model(**inputs).logits[0].float().cpu().numpy()
        refs.append(ref)
        logprobs.append(log_softmax(logits).astype(np.float32))
        seconds += duration
        if (index + 1) % 50 == 0:
            print(f"[eval] {name}: {index + 1}/{len(raw.text)} clips", file=sys.stderr, flush=True)
    if not refs:
        raise ScoreError(f"split '{name}' has no clip with a transcript within the duration limits")
    return SplitLogits(name, refs, logprobs, seconds)


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """Corpus WER and CER (jiwer, as the training's eval metric)."""
    import jiwer

    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def decode_all(split: SplitLogits, vocab: Vocab, lm: ArpaModel | None, weights: LmWeights) -> list[str]:
    if lm is None:
        return [greedy(lp, vocab) for lp in split.logprobs]
    return [beam_search(lp, vocab, lm, weights) for lp in split.logprobs]


def read_lm(run_dir: Path) -> tuple[ArpaModel, str]:
    """The run's ARPA model and its SHA-256; ScoreError when there is none yet."""
    path = run_dir / LM_DIR / LM_ARPA
    if not path.is_file():
        raise ScoreError(f"{run_dir} has no language model yet: build it with ctc-tui lm build {run_dir}")
    data = path.read_bytes()
    try:
        return read_arpa(data.decode("utf-8").splitlines()), hashlib.sha256(data).hexdigest()
    except (ArpaError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{path}: {exc}; rebuild it with ctc-tui lm build {run_dir}") from None


def model_key(folder: Path) -> str:
    """Names the model's weights as saved (folder, file names, sizes, modification times): weights
    tuned for one checkpoint are not reused for another, nor after a resumed run saved new ones."""
    files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    parts = [folder.name] + [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def stored_weights(run_dir: Path, arpa_sha: str, model: str = "") -> LmWeights | None:
    """Weights tuned earlier for this very ARPA file (and, when given, this model), if any."""
    try:
        saved = json.loads((run_dir / LM_DIR / LM_WEIGHTS).read_text())
    except (OSError, ValueError):
        return None
    if saved.get("arpa_sha256") != arpa_sha or (model and saved.get("model_key") != model):
        return None
    return LmWeights(float(saved["alpha"]), float(saved["beta"]))


def tune(split: SplitLogits, vocab: Vocab, lm: ArpaModel) -> tuple[LmWeights, list[dict]]:
    """The grid's best (alpha, beta) by WER on ``split`` (CER, then the smaller alpha, break ties)."""
    trials = []
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        if alpha == 0.0 and beta != 0.0:
            continue
        wer, cer = error_rates(split.references, decode_all(split, vocab, lm, LmWeights(alpha, beta)))
        trials.append({"alpha": alpha, "beta": beta, "wer": wer, "cer": cer})
        print(f"[eval] tuning on {split.name}: alpha {alpha} beta {beta} WER {wer:.4f}", file=sys.stderr)
    best = min(trials, key=lambda t: (t["wer"], t["cer"], t["alpha"], t["beta"]))
    return LmWeights(best["alpha"], best["beta"]), trials


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def split_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".json"


def score_split(split: SplitLogits, vocab: Vocab, lm: ArpaModel | None, weights: LmWeights | None) -> dict:
    wer, cer = error_rates(split.references, decode_all(split, vocab, None, LmWeights()))
    result: dict[str, Any] = {
        "split": split.name,
        "clips": len(split.references),
        "hours": split.seconds / 3600,
        "wer": wer,
        "cer": cer,
    }
    if lm is not None and weights is not None:
        wer_lm, cer_lm = error_rates(split.references, decode_all(split, vocab, lm, weights))
        result.update(wer_lm=wer_lm, cer_lm=cer_lm, alpha=weights.alpha, beta=weights.beta)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctc-tui eval", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--split", action="append", default=[], help="a split of the preset's data")
    parser.add_argument("--checkpoint", type=int, help="score checkpoint-N instead of the final model")
    parser.add_argument("--lm", action="store_true", help="also decode with beam search + RUN_DIR/lm/")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not (run_dir / PRESET).is_file():
        raise ScoreError(f"{run_dir} is not a run dir (no {PRESET}); pass the folder a run wrote")
    preset = load_preset(run_dir / PRESET)
    folder = model_folder(run_dir, args.checkpoint)
    lm, arpa_sha = read_lm(run_dir) if args.lm else (None, "")
    processor, model, device = load_model(preset, run_dir, folder)
    vocab = Vocab.from_tokenizer(processor.tokenizer)
    eval_name = preset.data.eval_split_name
    names = args.split or [eval_name]
    cache: dict[str, SplitLogits] = {}

    def logits_of(name: str) -> SplitLogits:
        if name not in cache:
            cache[name] = split_logits(preset, name, processor, model, device)
        return cache[name]

    key = model_key(folder)
    weights = stored_weights(run_dir, arpa_sha, key) if lm is not None else None
    if lm is not None and weights is None:
        weights, trials = tune(logits_of(eval_name), vocab, lm)
        write_json(
            run_dir / LM_DIR / LM_WEIGHTS,
            {
                "alpha": weights.alpha,
                "beta": weights.beta,
                "tuned_on": eval_name,
                "model": folder.name,
                "model_key": key,
                "arpa_sha256": arpa_sha,
                "grid": trials,
            },
        )
    for name in names:
        result = score_split(logits_of(name), vocab, lm, weights)
        result["model"] = "final" if args.checkpoint is None else folder.name
        result["device"] = device
        result["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(run_dir / EVAL_DIR / split_file_name(name), result)
        print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ScoreError, PresetError) as exc:
        message = exc.render() if isinstance(exc, PresetError) else f"error: {exc}"
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
