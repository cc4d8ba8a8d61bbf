"""Load the model and processor, and choose the device: the step every job of the runner shares.

- ``backend_name``: where a preset runs (``hpu``, ``cuda`` or ``cpu``); the Trainer classes and
  arguments for each: ctc_tui.runner.backends;
- ``inference_device``: where a trained run's model runs for transcription and evaluation: the device
  it trained on, or the CPU with a note when this machine lacks that device;
- ``load_for_training``: the tokenizer (the preset's, or a character vocabulary built from the training
  text) and the CTC model, seeded, ready to fine-tune;
- ``load_trained``: a trained run dir's processor and model, for transcription and evaluation (and
  export of a finished run).

How a model is built from a preset (an architecture, a hub id or a local folder): ctc_tui.runner.model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.core.preset import Preset
from ctc_tui.runner.model import Built, build, choose_tokenizer
from ctc_tui.runner.report import Reporter
from ctc_tui.runner.text import missing_chars

if TYPE_CHECKING:  # only a type here: importing the data module would load numpy for transcription too
    from ctc_tui.runner.splits import Splits


def backend_name(preset: Preset) -> str:
    """``hpu`` when the preset uses Habana, ``cpu`` when it asks for the CPU, else ``cuda`` where a
    CUDA device is visible and ``cpu`` where none is."""
    if preset.gaudi.use_habana:
        return "hpu"
    if preset.training.use_cpu:
        return "cpu"
    import torch  # deferred: the runner's --help and error paths stay fast

    return "cuda" if torch.cuda.is_available() else "cpu"


def hpu_usable() -> bool:
    """Whether Intel's Habana stack is installed and sees a Gaudi device."""
    try:
        import habana_frameworks.torch.hpu as hthpu  # deferred: only present on Gaudi machines
    except ImportError:
        return False
    return bool(hthpu.is_available())


def inference_device(preset: Preset | None) -> tuple[str, str | None]:
    """(device, note): where to run a trained model, by the training's own choice (``backend_name``).
    A run trained on Gaudi or a GPU is often transcribed elsewhere (a laptop): where this machine lacks
    that device, the CPU, and a note saying so (None when the run's device is used). Without a preset
    (a bare model folder): the CPU."""
    if preset is None:
        return "cpu", None
    device = backend_name(preset)
    if device == "hpu" and not hpu_usable():
        return "cpu", "note: the run trained on Gaudi (hpu), but no HPU is usable here: running on the CPU"
    if device == "cpu" and not preset.training.use_cpu and not preset.gaudi.use_habana:
        return (
            "cpu",
            "note: the run asks for a GPU (training.use_cpu: false), but none is visible: running on the CPU",
        )
    return device, None


def vocabulary_dir(run_dir: Path, rank: int) -> Path:
    """Where a built vocabulary is written. Every rank builds the same one from the same text; rank 0
    keeps it in the run dir, the others write theirs to a folder of their own."""
    return run_dir if rank == 0 else Path(tempfile.mkdtemp(prefix=f"ctc-tui-vocab-{rank}-"))


def load_for_training(preset: Preset, splits: Splits, run_dir: Path, rank: int, reporter: Reporter) -> Built:
    """The tokenizer and the model to fine-tune. Evaluation text with characters the vocabulary lacks
    is named in a warning (those characters can never be transcribed)."""
    from transformers import set_seed

    choice = choose_tokenizer(preset, splits.vocabulary_text(), vocabulary_dir(run_dir, rank), splits.spaced)
    tokenizer, vocab = choice.tokenizer, choice.vocab
    if rank == 0:
        for message in [*splits.notes, choice.note]:
            if message:
                reporter.emit("log", level="info", message=message)
    unseen = unseen_characters(splits, vocab)
    if unseen:
        message = f"eval text has characters absent from training text: {unseen!r}"
        reporter.emit("log", level="warning", message=message)
    # The seed also decides the weights a model built from a config starts from (and any head added to
    # a pretrained one): the same preset and seed train the same model.
    set_seed(preset.training.seed)
    return build(preset, tokenizer, vocab, choice.reinit_head)


def unseen_characters(splits: Splits, vocab: dict[str, int] | None) -> str:
    """The characters of the normalised evaluation text that a built vocabulary lacks, sorted ("" with
    the preset's own tokenizer, or without evaluation)."""
    if vocab is None or splits.eval is None:
        return ""
    return "".join(sorted(missing_chars((splits.normalise(t) for t in splits.eval.text), vocab)))


@dataclass
class Trained:
    """A trained model and its processor (feature extractor + tokenizer), ready for inference."""

    processor: Any
    model: Any


def has_trained_model(folder: Path) -> bool:
    """Whether ``folder`` holds a model's config.json and its weights."""
    weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return (folder / "config.json").is_file() and weights


def load_trained(folder: Path, weights: Path | None = None, device: str = "cpu") -> Trained:
    """The processor saved in ``folder`` (a finished run dir) and the model saved there, or in
    ``weights`` (one of its ``checkpoint-N``, which hold no tokenizer), in eval mode on ``device``
    (``backend_name``'s choice: the device the run trained on)."""
    from transformers import AutoModelForCTC, AutoProcessor

    if device == "hpu":
        import habana_frameworks.torch.core  # noqa: F401  (deferred: registers the hpu device)
    processor = AutoProcessor.from_pretrained(str(folder))
    model = AutoModelForCTC.from_pretrained(str(weights or folder)).eval().to(device)
    return Trained(processor, model)
