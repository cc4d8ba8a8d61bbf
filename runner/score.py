"""``python -m ctc_tui.runner.score RUN_DIR [--split SPEC]... [--checkpoint N] [--lm] [--events]``: WER and
CER of a trained run on splits of its preset's data or any other (a folder, a manifest, SOURCE:ROOT[:SPLIT]:
``ctc_tui.sources.evalsplit``), greedy and with beam search + the run's n-gram LM.

``ctc-tui eval`` runs this in a child process (the CLI never imports torch). Each split is read by its
source's reader and its clips filtered as preprocessing filters them (``scoresplits``). The model's
log probabilities are computed once per clip and decoded
greedily and, with ``--lm``, by ``decode.beam_search``. The LM's weights (alpha, beta) are tuned by a
small grid search on the preset's eval split the first time and kept in ``RUN_DIR/lm/weights.json``
with the ARPA's SHA-256 and the model's key (a rebuilt LM, or another checkpoint, is tuned again); they
are never tuned on another split. Prints one JSON object per split on stdout and writes it to
``RUN_DIR/eval/<label>.json``; errors go to stderr, and progress too (``progress`` events: clips scored
per split, grid points x clips while tuning, clips beam-searched per split), as plain lines or, with
``--events``, as JSON event lines that ``ctc-tui eval`` and the app draw as bars.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctc_tui.core import checkpoints, events, private
from ctc_tui.core.ngram import ArpaError, ArpaModel, read_arpa
from ctc_tui.core.preset import Preset, load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.core.rundir import EVAL_DIR, LM_ARPA, LM_DIR, LM_WEIGHTS, PRESET
from ctc_tui.core.sources import DataError
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, greedy
from ctc_tui.runner.load import has_trained_model, inference_device, load_trained
from ctc_tui.runner.progress import Progress
from ctc_tui.runner.scoresplits import ScoreError, SplitLogits, split_logits
from ctc_tui.sources import evalsplit
from ctc_tui.sources.evalsplit import EvalSplit

#: The alpha/beta grid tried on the eval split (alpha 0 = no LM: tuning can always fall back to it).
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
BETAS = (0.0, 0.5, 1.0, 2.0)


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


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """Corpus WER and CER (jiwer, as the training's eval metric)."""
    import jiwer

    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def decode_all(
    split: SplitLogits,
    vocab: Vocab,
    lm: ArpaModel | None,
    weights: LmWeights,
    progress: Progress | None = None,
) -> list[str]:
    """Each clip's transcript, greedy (``lm`` None) or by beam search with the LM; clips counted on
    ``progress``."""
    if lm is None:
        return [greedy(lp, vocab) for lp in split.logprobs]
    hyps: list[str] = []
    if progress is not None:
        progress.update(0)
    for lp in split.logprobs:
        hyps.append(beam_search(lp, vocab, lm, weights))
        if progress is not None:
            progress.update(len(hyps))
    return hyps


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


def grid() -> list[LmWeights]:
    """The (alpha, beta) pairs tuning tries (beta means nothing without the LM: alpha 0 once)."""
    return [LmWeights(a, b) for a, b in itertools.product(ALPHAS, BETAS) if a != 0.0 or b == 0.0]


def tune(
    split: SplitLogits, vocab: Vocab, lm: ArpaModel, emit: Callable[..., Any] = lambda *a, **k: None
) -> tuple[LmWeights, list[dict]]:
    """The grid's best (alpha, beta) by WER on ``split`` (CER, then the smaller alpha, break ties);
    the grid points tried are counted as ``tuning on SPLIT`` progress (clips x points)."""
    trials = []
    points = grid()
    clips = len(split.logprobs)
    progress = Progress(emit, f"tuning on {split.name}", clips * len(points))
    for index, weights in enumerate(points):
        each = _Offset(progress, index * clips)
        wer, cer = error_rates(split.references, decode_all(split, vocab, lm, weights, each))
        trials.append({"alpha": weights.alpha, "beta": weights.beta, "wer": wer, "cer": cer})
    first, second = ("wer", "cer") if split.spaced else ("cer", "wer")  # CER first without spaces
    best = min(trials, key=lambda t: (t[first], t[second], t["alpha"], t["beta"]))
    return LmWeights(best["alpha"], best["beta"]), trials


class _Offset:
    """A Progress seen from one part of it: ``update(n)`` counts ``start + n``."""

    def __init__(self, progress: Progress, start: int):
        self.progress, self.start = progress, start

    def update(self, done: int) -> None:
        self.progress.update(self.start + done)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def score_split(
    split: SplitLogits,
    vocab: Vocab,
    lm: ArpaModel | None,
    weights: LmWeights | None,
    emit: Callable[..., Any] = lambda *a, **k: None,
) -> dict:
    """The split's greedy WER/CER and, with the LM and its weights, beam search's (``LM decoding
    SPLIT`` progress, in clips)."""
    wer, cer = error_rates(split.references, decode_all(split, vocab, None, LmWeights()))
    result: dict[str, Any] = {
        "split": split.name,
        "clips": len(split.references),
        "hours": split.seconds / 3600,
        "primary": split.primary,
        **({"wer": wer, "cer": cer} if split.spaced else {"cer": cer, "wer": wer}),
    }
    if lm is not None and weights is not None:
        progress = Progress(emit, f"LM decoding {split.name}", len(split.logprobs))
        wer_lm, cer_lm = error_rates(split.references, decode_all(split, vocab, lm, weights, progress))
        result.update(wer_lm=wer_lm, cer_lm=cer_lm, alpha=weights.alpha, beta=weights.beta)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctc-tui eval", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        help="a split of the preset's data, a folder, SOURCE:ROOT[:SPLIT]",
    )
    parser.add_argument("--checkpoint", type=int, help="score checkpoint-N instead of the final model")
    parser.add_argument("--lm", action="store_true", help="also decode with beam search + RUN_DIR/lm/")
    parser.add_argument("--events", action="store_true", help="progress as JSON event lines on stderr")
    return parser.parse_args(argv)


def emitter(as_events: bool) -> Callable[..., Any]:
    """Where progress goes: JSON event lines on stderr (``ctc-tui eval`` draws them as a bar), or a
    plain ``[eval] WHAT: DONE/TOTAL`` line per event."""

    def emit(kind: str, **fields: Any) -> None:
        if as_events:
            line = events.encode({"type": kind, "t": time.time(), "rank": 0, **fields})
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
        elif kind == "progress":
            total = "?" if fields.get("total") is None else fields["total"]
            print(f"[eval] {fields['what']}: {fields['done']}/{total}", file=sys.stderr, flush=True)

    return emit


def resolve_all(specs: list[str], eval_name: str) -> list[EvalSplit]:
    """The ``--split`` values (default: the preset's eval split) as EvalSplits, each label once."""
    try:
        resolved = [evalsplit.resolve(s) for s in specs] or [evalsplit.preset_split(eval_name)]
    except DataError as exc:
        raise ScoreError(str(exc)) from None
    return list({s.label: s for s in resolved}.values())


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not (run_dir / PRESET).is_file():
        raise ScoreError(f"{run_dir} is not a run dir (no {PRESET}); pass the folder a run wrote")
    private.check_run_dir(run_dir)  # it writes eval/ and lm/weights.json there
    preset = load_preset(run_dir / PRESET)
    emit = emitter(args.events)
    eval_split = evalsplit.preset_split(preset.data.eval_split_name)
    specs = resolve_all(args.split, preset.data.eval_split_name)
    folder = model_folder(run_dir, args.checkpoint)
    lm, arpa_sha = read_lm(run_dir) if args.lm else (None, "")
    processor, model, device = load_model(preset, run_dir, folder)
    vocab = Vocab.from_tokenizer(processor.tokenizer)
    cache: dict[str, SplitLogits] = {}

    def logits_of(spec: EvalSplit) -> SplitLogits:
        if spec.label not in cache:
            cache[spec.label] = split_logits(preset, spec, processor, model, device, emit)
        return cache[spec.label]

    key = model_key(folder)
    weights = stored_weights(run_dir, arpa_sha, key) if lm is not None else None
    if lm is not None and weights is None:
        weights, trials = tune(logits_of(eval_split), vocab, lm, emit)
        write_json(
            run_dir / LM_DIR / LM_WEIGHTS,
            {
                "alpha": weights.alpha,
                "beta": weights.beta,
                "tuned_on": eval_split.label,
                "model": folder.name,
                "model_key": key,
                "arpa_sha256": arpa_sha,
                "grid": trials,
            },
        )
    for spec in specs:
        result = score_split(logits_of(spec), vocab, lm, weights, emit)
        if spec.path is not None:
            result["path"] = spec.path
        result["model"] = "final" if args.checkpoint is None else folder.name
        result["device"] = device
        result["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(run_dir / EVAL_DIR / spec.file_name, result)
        print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ScoreError, PresetError, private.PrivacyError) as exc:
        message = exc.render() if isinstance(exc, PresetError) else f"error: {exc}"
        print(message, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
