"""The files that make a packaged model folder a ``Wav2Vec2ProcessorWithLM`` (transformers) with its
pyctcdecode decoder: ``alphabet.json`` next to the model, and ``language_model/`` holding the ARPA file,
its unigrams and ``attrs.json`` (alpha, beta, the unknown-word offset, sentence boundaries).

Written here without pyctcdecode (``ctc-tui package`` needs none; whoever loads the folder does), in the
layout its ``BeamSearchDecoderCTC.load_from_dir`` reads: exactly these three files in ``language_model/``
(it refuses any other), attrs with exactly pyctcdecode's four keys.

The alphabet is the tokenizer's tokens by id, as long as the model's output (pyctcdecode refuses logits
of another width), with the substitutions transformers' processor checks the alphabet against: the CTC
blank (padding) becomes ``""``, the word delimiter ``|`` a space, an ``[UNK]``/``<unk>`` token ``⁇``.
The weights are ctc-tui's own (``ctc_tui.runner.decode.LmWeights``, tuned by ``ctc-tui eval --lm``)
restated in pyctcdecode's units: it adds its unknown-word offset to a log10 probability, ctc-tui to a
natural-log one, so the offset is divided by ln 10; alpha and beta mean the same in both. With alpha 0
(the tuning found the LM no help) ctc-tui's offset vanishes with it (it is scaled by alpha); pyctcdecode
also charges it, unscaled, to every unfinished word it does not know, so there it is written as 0.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core.rundir import LM_ARPA, LM_DIR, LM_INFO, LM_UNIGRAMS, LM_WEIGHTS
from ctc_tui.runner.decode import LmWeights

ALPHABET = "alphabet.json"  # pyctcdecode's BeamSearchDecoderCTC._ALPHABET_SERIALIZED_FILENAME
LANGUAGE_MODEL = "language_model"  # its _LANGUAGE_MODEL_SERIALIZED_DIRECTORY
ATTRS = "attrs.json"  # LanguageModel._ATTRS_SERIALIZED_FILENAME
UNIGRAMS = "unigrams.txt"  # LanguageModel._UNIGRAMS_SERIALIZED_FILENAME
UNK_LABEL = "⁇"  # pyctcdecode's alphabet.UNK_TOKEN
#: The token names transformers' processor takes for the unknown token (pyctcdecode's UNK_TOKEN_PTN).
_UNK_NAME = re.compile(r"^[<\[]unk[>\]]$", re.IGNORECASE)
WITH_LM = "Wav2Vec2ProcessorWithLM"
WITHOUT_LM = "Wav2Vec2Processor"


class LmFilesError(Exception):
    """The run's LM cannot be packaged as it is; the message names the fix."""


@dataclass(frozen=True)
class TunedLm:
    """The run's LM as it will be packaged: its files and the weights ``ctc-tui eval --lm`` tuned."""

    arpa: Path
    unigrams: Path
    weights: LmWeights
    tuned: dict  # RUN_DIR/lm/weights.json as read (what they were tuned on and for which model)
    info: dict  # RUN_DIR/lm/lm.json (order, sources, vocabulary)


def labels(tokens: dict[str, int], size: int, blank: str, delimiter: str) -> list[str]:
    """pyctcdecode's labels for a CTC vocabulary (token -> id) of a model with ``size`` outputs."""
    by_id = {index: text for text, index in tokens.items()}
    missing = [i for i in range(size) if i not in by_id]
    if missing:
        raise LmFilesError(f"the tokenizer has no token for output id(s) {missing[:5]} of the model")
    out = []
    for index in range(size):
        text = by_id[index]
        if text == blank:
            out.append("")
        elif text == delimiter:
            out.append(" ")
        elif _UNK_NAME.match(text):
            out.append(UNK_LABEL)
        else:
            out.append(text)
    if len(set(out)) != len(out):
        raise LmFilesError("the vocabulary maps two tokens to one decoder label (e.g. a ' ' token and '|')")
    return out


def write_alphabet(folder: Path, alphabet: list[str]) -> Path:
    """``folder/alphabet.json`` as pyctcdecode's ``Alphabet.dumps`` writes it (a character vocabulary)."""
    path = folder / ALPHABET
    path.write_text(json.dumps({"labels": alphabet, "is_bpe": False}), encoding="utf-8")
    return path


def attrs(weights: LmWeights) -> dict:
    """pyctcdecode's ``LanguageModel`` attributes that decode as ctc-tui's beam search scores words."""
    return {
        "alpha": float(weights.alpha),
        "beta": float(weights.beta),
        "unk_score_offset": weights.unk_offset / math.log(10.0) if weights.alpha else 0.0,
        "score_boundary": True,  # ctc-tui scores the first word after <s> and ends with </s>
    }


def write_language_model(folder: Path, lm: TunedLm) -> Path:
    """``folder/language_model/``: the ARPA file, the unigrams and attrs.json, nothing else."""
    target = folder / LANGUAGE_MODEL
    target.mkdir()
    shutil.copyfile(lm.arpa, target / LM_ARPA)
    shutil.copyfile(lm.unigrams, target / UNIGRAMS)
    (target / ATTRS).write_text(json.dumps(attrs(lm.weights)), encoding="utf-8")
    return target


def set_processor_class(folder: Path, name: str) -> None:
    """Name the processor class in the folder's processor files (the pipeline reads it from the feature
    extractor's ``preprocessor_config.json`` to decide whether to load the decoder)."""
    for file_name in ("preprocessor_config.json", "tokenizer_config.json"):
        path = folder / file_name
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            config["processor_class"] = name
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / "processor_config.json").write_text(json.dumps({"processor_class": name}, indent=2) + "\n")


def read_tuned(run_dir: Path, arpa_sha: str) -> TunedLm | None:
    """The run's LM with its tuned weights; None when the run has no LM. LmFilesError when it has one
    whose weights were never tuned for this very ARPA file (they would be guesses)."""
    lm_dir = run_dir / LM_DIR
    arpa, unigrams = lm_dir / LM_ARPA, lm_dir / LM_UNIGRAMS
    if not arpa.is_file():
        return None
    if not unigrams.is_file():
        raise LmFilesError(f"{lm_dir} has {LM_ARPA} but no {LM_UNIGRAMS}: rebuild it with ctc-tui lm build")
    try:
        tuned = json.loads((lm_dir / LM_WEIGHTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tuned = None
    if not isinstance(tuned, dict) or tuned.get("arpa_sha256") != arpa_sha:
        raise LmFilesError(
            f"the LM in {lm_dir} has no alpha/beta tuned for it yet: run ctc-tui eval {run_dir} --lm "
            "(tunes them on the eval split), or package without it: --no-lm"
        )
    try:
        info = json.loads((lm_dir / LM_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    weights = LmWeights(float(tuned["alpha"]), float(tuned["beta"]))
    return TunedLm(arpa, unigrams, weights, tuned, info)
