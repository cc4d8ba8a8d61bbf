"""What a packaged model's card says, gathered from its run dir: the training data as the run read it
(clips and hours of the train split, within the preset's duration limits), the evaluation results
``ctc-tui eval`` wrote (``RUN_DIR/eval/*.json``), the LM and its tuned weights, the software versions
(``env.json`` at training, the installed ones now) and the commands that reproduce the folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
from importlib import metadata
from pathlib import Path

from ctc_tui.core import rundir
from ctc_tui.core.preset import Preset
from ctc_tui.core.sources import DataError
from ctc_tui.runner.lmfiles import TunedLm
from ctc_tui.runner.modelcard import CardFacts, DataFacts

#: The packages the card names (optimum-habana only where it was used or is installed).
CARD_PACKAGES = (
    "ctc-tui",
    "torch",
    "transformers",
    "optimum-habana",
    "pyctcdecode",
    "kenlm",
    "huggingface-hub",
)


def train_data(preset: Preset) -> DataFacts:
    """The train split: clips kept by the duration limits and their hours, read from the audio headers
    (None when the data cannot be read from here, or is hub data)."""
    cfg = preset.data
    location = cfg.dataset_dir or " ".join(filter(None, [cfg.dataset_name, cfg.dataset_config_name])) or "?"
    clips = hours = None
    try:
        from ctc_tui.runner.data import limit, load_raw_split
        from ctc_tui.sources.audioinfo import audio_info

        raw = limit(load_raw_split(cfg, cfg.train_split_name, preset.model.token), cfg.max_train_samples)
        if all(isinstance(a, str) for a in raw.audio):
            seconds = [_seconds(audio_info(path)) for path in raw.audio]
            kept = [
                s
                for s in seconds
                if s is not None and cfg.min_duration_in_seconds <= s <= cfg.max_duration_in_seconds
            ]
            clips, hours = len(kept), sum(kept) / 3600
        else:
            clips = len(raw.text)
    except (DataError, OSError):
        pass
    return DataFacts(str(cfg.source), str(location), cfg.train_split_name, clips, hours)


def _seconds(info: tuple[int, int] | None) -> float | None:
    return None if info is None or not info[0] else info[1] / info[0]


def eval_results(run_dir: Path) -> list[dict]:
    """Every ``RUN_DIR/eval/<split>.json`` that reads as a ctc-tui eval result, by split name."""
    results = []
    for path in sorted((run_dir / rundir.EVAL_DIR).glob("*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and {"split", "clips", "hours", "wer", "cer"} <= result.keys():
            results.append(result)
    return results


def versions(run_dir: Path) -> dict[str, dict[str, str | None]]:
    try:
        trained = json.loads((run_dir / rundir.ENV_INFO).read_text(encoding="utf-8")).get("packages", {})
    except (OSError, ValueError, AttributeError):
        trained = {}
    out = {}
    for name in CARD_PACKAGES:
        try:
            now = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = None
        out[name] = {"trained": trained.get(name), "packaged": now}
    return out


def commands(run_dir: Path, preset: Preset, lm: TunedLm | None, args: argparse.Namespace) -> list[str]:
    """From the preset copied into the folder to this very folder."""
    run = "runs/reproduce"
    lines = [f"ctc-tui run ctc-tui-preset.yaml --output-dir {run}"]
    if lm is not None:
        build = ["ctc-tui", "lm", "build", run, "--order", str(lm.info.get("order", 3))]
        for source in lm.info.get("sources", []):
            if source.get("kind") == "text":
                build += ["--text", source["path"]]
        if not any(s.get("kind") == "transcripts" for s in lm.info.get("sources", [{"kind": "transcripts"}])):
            build.append("--no-transcripts")
        lines += [shlex.join(build), f"ctc-tui eval {run} --lm"]
    package = ["ctc-tui", "package", run, args.out.name]
    if args.checkpoint is not None:
        package += ["--checkpoint", str(args.checkpoint)]
    if args.average is not None:
        package += ["--average", str(args.average)]
    if args.no_lm:
        package.append("--no-lm")
    if args.language:
        package += ["--language", args.language]
    return [*lines, shlex.join(package)]


def _scored(model: str | None, run_dir: Path) -> str:
    """ctc-tui eval names the final model by the run dir's folder name."""
    return "the run's final model" if model in (None, run_dir.name) else str(model)


def card_facts(
    run_dir: Path,
    out: Path,
    preset: Preset,
    origin: str,
    architecture: str,
    lm: TunedLm | None,
    args: argparse.Namespace,
) -> CardFacts:
    results = eval_results(run_dir)
    lm_facts = None
    if lm is not None:
        lm_facts = {
            "order": lm.info.get("order"),
            "vocabulary": lm.info.get("vocabulary"),
            "alpha": lm.weights.alpha,
            "beta": lm.weights.beta,
            "tuned_on": lm.tuned.get("tuned_on"),
            "model": _scored(lm.tuned.get("model"), run_dir),
        }
    notes = []
    if args.average is not None or args.checkpoint is not None:
        notes.append(
            "The evaluation above scored the model named under it; these weights are "
            f"{origin} (`ctc-tui eval RUN_DIR --checkpoint N` scores one checkpoint)."
        )
    vers = versions(run_dir)
    if not (vers["optimum-habana"]["trained"] and preset.gaudi.use_habana):
        vers.pop("optimum-habana")
    return CardFacts(
        name=out.name,
        architecture=architecture,
        origin=origin,
        preset_yaml=(run_dir / rundir.PRESET).read_text(encoding="utf-8"),
        data=train_data(preset),
        results=results,
        commands=commands(run_dir, preset, lm, args),
        versions=vers,
        language=args.language,
        lm=lm_facts,
        notes=notes,
    )
