"""``python -m ctc_tui.runner.package RUN_DIR OUT [--checkpoint N | --average K] [--no-lm] [--force]
[--language CODE] [--push-to-hub REPO_ID [--private]]``: a trained run as a folder plain transformers
loads, ``pipeline("automatic-speech-recognition", model=OUT)``.

``ctc-tui package`` runs this in a child process (the CLI never imports torch). The folder holds the
model's ``config.json`` and ``model.safetensors`` (the run's final model, ``checkpoint-N``, or the
average of the last K complete checkpoints: ``ctc_tui.runner.averaging``), the processor's files
(feature extractor, tokenizer, vocabulary, ``processor_config.json``), the preset as
``ctc-tui-preset.yaml`` and a model card (``README.md``: ``ctc_tui.runner.modelcard``). When the run has
an LM with tuned weights, the folder is a ``Wav2Vec2ProcessorWithLM`` layout (``ctc_tui.runner.lmfiles``)
and the pipeline decodes with it. The folder is built aside and renamed into place at the end: OUT is
either absent, empty, or (``--force``) replaced whole; never half written. ``--push-to-hub`` then
uploads it (``ctc_tui.runner.hubpush``). Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core import checkpoints, private, rundir
from ctc_tui.core.preset import Preset, load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.core.trust import Untrusted
from ctc_tui.runner import averaging, hubpush, lmfiles
from ctc_tui.runner.packagefacts import card_facts

PRESET_COPY = "ctc-tui-preset.yaml"
CARD = "README.md"


class PackageError(Exception):
    """A run or an OUT folder that cannot be packaged as asked; the message names the fix."""


@dataclass(frozen=True)
class Weights:
    """Where the packaged weights come from: the folder whose config is used and the checkpoints to
    average (empty: ``folder``'s own weights)."""

    folder: Path
    origin: str  # for the card: "the run's final model", "checkpoint-400", "the average of ..."
    averaged: tuple[checkpoints.Checkpoint, ...] = ()


# -- what is asked ------------------------------------------------------------------------------------


def check_out(out: Path, run_dir: Path, force: bool) -> None:
    """OUT must be new or an empty folder (or ``--force``), and never the run dir or a folder above it."""
    target, source = out.resolve(), run_dir.resolve()
    if target == source or target in source.parents:
        raise PackageError(f"{out} holds the run dir {run_dir}: choose another folder for the package")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise PackageError(f"{out} exists and is not a folder: choose a new folder for the package")
    if out.is_dir() and any(out.iterdir()) and not force:
        count = sum(1 for _ in out.iterdir())
        raise PackageError(
            f"{out} exists and is not empty ({count} entries): choose a new folder, or --force to replace it"
        )


def _complete_names(run_dir: Path) -> str:
    found = checkpoints.scan(run_dir)
    return ", ".join(c.name if c.complete else f"{c.name} (incomplete)" for c in found) or "none"


def choose_weights(run_dir: Path, checkpoint: int | None, average: int | None) -> Weights:
    """The weights asked for; PackageError naming what the run has when they are not there."""
    if average is not None:
        try:
            chosen = averaging.last_complete(run_dir, average)
        except averaging.AveragingError as exc:
            raise PackageError(str(exc)) from None
        names = ", ".join(c.name for c in chosen)
        return Weights(
            chosen[-1].path, f"the average of the last {average} checkpoints ({names})", tuple(chosen)
        )
    if checkpoint is not None:
        folder = run_dir / f"{checkpoints.PREFIX}{checkpoint}"
        if not folder.is_dir():
            raise PackageError(f"{run_dir} has no {folder.name}; checkpoints: {_complete_names(run_dir)}")
        problems = checkpoints.problems(folder)
        if problems:
            raise PackageError(
                f"{folder.name} is incomplete ({'; '.join(problems)}); choose another --checkpoint N"
            )
        return Weights(folder, folder.name)
    if not _has_weights(run_dir):
        raise PackageError(
            f"{run_dir} has no final model (the run has not finished); checkpoints: "
            f"{_complete_names(run_dir)}: package one with --checkpoint N or --average K, or finish the run "
            f"(ctc-tui run --resume {run_dir})"
        )
    return Weights(run_dir, "the run's final model")


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in checkpoints.WEIGHTS
    )


# -- writing the folder -------------------------------------------------------------------------------


def write_weights(target: Path, weights: Weights) -> None:
    """``config.json`` and ``model.safetensors`` (or its shards) of the chosen weights in ``target``."""
    shutil.copyfile(weights.folder / "config.json", target / "config.json")
    if weights.averaged:
        _write_average(target, weights)
        return
    folder = weights.folder
    if (folder / "model.safetensors").is_file():
        shutil.copyfile(folder / "model.safetensors", target / "model.safetensors")
    elif (folder / "model.safetensors.index.json").is_file():
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        for name in sorted({*index["weight_map"].values(), "model.safetensors.index.json"}):
            shutil.copyfile(folder / name, target / name)
    else:
        _bin_to_safetensors(folder, target)


def _write_average(target: Path, weights: Weights) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCTC

    config = AutoConfig.from_pretrained(str(weights.folder))
    with torch.device("meta"):  # only the buffers' names are wanted: no memory for the weights
        model = AutoModelForCTC.from_config(config)
    buffers = {name for name, _ in model.named_buffers()}
    state = averaging.average_checkpoints(list(weights.averaged), buffers)
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(target / "model.safetensors"), {"format": "pt"}
    )


def _bin_to_safetensors(folder: Path, target: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = folder / "pytorch_model.bin"
    if not path.is_file():
        raise PackageError(f"{folder} has sharded .bin weights; save them as safetensors first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(target / "model.safetensors"), {"format": "pt"}
    )


def write_processor(target: Path, run_dir: Path) -> None:
    """The run's processor (feature extractor + tokenizer), as transformers saves it."""
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(str(run_dir)).save_pretrained(str(target))


def write_lm(target: Path, lm: lmfiles.TunedLm) -> None:
    """alphabet.json (the model's outputs) and language_model/ (ctc_tui.runner.lmfiles)."""
    config = json.loads((target / "config.json").read_text())
    tokenizer = json.loads((target / "tokenizer_config.json").read_text())
    vocab = json.loads((target / "vocab.json").read_text())
    for index, added in tokenizer.get("added_tokens_decoder", {}).items():
        vocab.setdefault(added["content"], int(index))
    try:
        alphabet = lmfiles.labels(
            vocab,
            int(config["vocab_size"]),
            tokenizer["pad_token"],
            tokenizer.get("word_delimiter_token", "|"),
        )
    except lmfiles.LmFilesError as exc:
        raise PackageError(f"{exc}; package without the LM: --no-lm") from None
    lmfiles.write_alphabet(target, alphabet)
    lmfiles.write_language_model(target, lm)


def check_loads(target: Path) -> str:
    """Load the folder as plain transformers would (model and processor); the model's class name."""
    from transformers import AutoModelForCTC

    model = AutoModelForCTC.from_pretrained(str(target))
    return type(model).__name__


@contextlib.contextmanager
def built_aside(out: Path):
    """A fresh folder next to OUT (same filesystem), renamed to OUT on success, removed on failure. An
    existing OUT (empty, or with --force) is swapped out first and removed only after the rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "previous")
    os.replace(work, out)
    os.chmod(out, 0o755 & ~_umask())
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def package(args: argparse.Namespace, preset: Preset) -> tuple[Path, lmfiles.TunedLm | None, str]:
    """Build OUT; returns it, the packaged LM (or None) and the model's class name."""
    run_dir, out = args.run_dir, args.out
    weights = choose_weights(run_dir, args.checkpoint, args.average)
    lm = None if args.no_lm else _tuned_lm(run_dir)
    with built_aside(out) as work:
        write_weights(work, weights)
        write_processor(work, run_dir)
        if lm is not None:
            write_lm(work, lm)
        lmfiles.set_processor_class(work, lmfiles.WITH_LM if lm else lmfiles.WITHOUT_LM)
        architecture = check_loads(work)
        shutil.copyfile(run_dir / rundir.PRESET, work / PRESET_COPY)
        facts = card_facts(run_dir, out, preset, weights.origin, architecture, lm, args)
        from ctc_tui.runner.modelcard import render

        (work / CARD).write_text(render(facts), encoding="utf-8")
    return out, lm, architecture


def _tuned_lm(run_dir: Path) -> lmfiles.TunedLm | None:
    arpa = run_dir / rundir.LM_DIR / rundir.LM_ARPA
    sha = hashlib.sha256(arpa.read_bytes()).hexdigest() if arpa.is_file() else ""
    try:
        return lmfiles.read_tuned(run_dir, sha)
    except lmfiles.LmFilesError as exc:
        raise PackageError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ctc-tui package", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=int, metavar="N", help="package checkpoint-N")
    which.add_argument("--average", type=int, metavar="K", help="average the last K complete checkpoints")
    parser.add_argument("--no-lm", action="store_true", help="leave the run's LM out")
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--language", metavar="CODE", help="the model card's language (ISO 639-1, e.g. en)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload OUT to this Hub model repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not (run_dir / rundir.PRESET).is_file():
        raise PackageError(f"{run_dir} is not a run dir (no {rundir.PRESET}); pass the folder a run wrote")
    private.check_run_dir(run_dir)
    check_out(args.out, run_dir, args.force)
    token = None
    if args.push_to_hub:
        hubpush.check_repo_id(args.push_to_hub)
        token = hubpush.token_for(run_dir)  # before any work: a push that cannot happen is said at once
    preset = load_preset(run_dir / rundir.PRESET)
    out, lm, architecture = package(args, preset)
    kind = "with its LM (Wav2Vec2ProcessorWithLM)" if lm else "greedy CTC (no LM)"
    print(
        f"{out}: {architecture}, {kind}; load it with pipeline('automatic-speech-recognition', model='{out}')"
    )
    if args.push_to_hub and token:
        url = hubpush.push(out, args.push_to_hub, token, args.private, f"ctc-tui package {run_dir.name}")
        print(f"pushed to {args.push_to_hub}: {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except hubpush.UploadFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (PackageError, hubpush.PushError, Untrusted) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PresetError as exc:
        print(exc.render(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
