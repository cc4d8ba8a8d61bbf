"""``ctc-tui lm build``: a word n-gram language model of a run's training transcripts, in ``RUN_DIR/lm/``.

The transcripts are read by the same source readers the runner trains from (``ctc_tui.sources``; hub
data, from the local datasets / HF cache, by the runner's own reader in a child process) and
normalised by the same function (``core.textnorm.normaliser_for`` with the preset's ``chars_to_ignore``
and ``do_lower_case``), so the LM's words are exactly the words the model learned to spell; the word
delimiter ``|`` is the space between them. Text files given with ``--text`` are normalised the same way,
one sentence a line. The model is estimated in pure Python (``core.ngram``) and written as:

- ``lm.arpa``: the model in ARPA format (what the runner's beam search, or KenLM, reads);
- ``unigrams.txt``: its words, one a line (what pyctcdecode-style decoders want next to the ARPA);
- ``lm.json``: what went in (sources with line counts and SHA-256 of their normalised text), the order,
  the n-gram counts, the discounts and the ARPA's SHA-256 (eval's tuned weights are tied to it).

Each file is written aside and renamed. No torch, no transformers: this runs on a login node.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core import ngram, private, rundir
from ctc_tui.core.preset import Preset, load_preset
from ctc_tui.core.rundir import PRESET
from ctc_tui.core.sources import DataError
from ctc_tui.core.textnorm import changed_text_settings, normaliser_for
from ctc_tui.sources import source
from ctc_tui.sources.base import SourceOptions

LM_DIR, ARPA, UNIGRAMS, INFO = rundir.LM_DIR, rundir.LM_ARPA, rundir.LM_UNIGRAMS, rundir.LM_INFO


class LmBuildError(Exception):
    """Input that cannot make a language model; the message names it and the fix."""


@dataclass
class Corpus:
    """Normalised sentences (lists of words) and, per source, what it contributed."""

    sentences: list[list[str]]
    sources: list[dict]


def run_preset(run_dir: Path) -> Preset:
    """The resolved preset a run was started with."""
    path = run_dir / PRESET
    if not path.is_file():
        raise LmBuildError(f"{run_dir} is not a run dir (no {PRESET}); pass the folder a run wrote")
    try:
        private.check_run_dir(run_dir)  # lm/ is written there
    except private.PrivacyError as exc:
        raise LmBuildError(str(exc)) from None
    return load_preset(path)


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def read_corpus(
    preset: Preset, texts: list[Path], transcripts: bool = True, preset_path: Path | None = None
) -> Corpus:
    """The training transcripts (unless ``transcripts`` is false) and each text file, normalised;
    ``preset_path`` (the run's preset.yaml) is what the runner reads hub data by."""
    cfg = preset.data
    normalise = normaliser_for(cfg)
    sentences: list[list[str]] = []
    sources: list[dict] = []

    def add(entry: dict, lines: list[str]) -> None:
        kept = [line for line in (normalise(t) for t in lines) if line]
        sentences.extend(line.split() for line in kept)
        sources.append({**entry, "sentences": len(kept), "sha256": _digest(kept)})

    if transcripts:
        for split in (s.strip() for s in cfg.train_split_name.split("+")):
            lines = _split_text(preset, split, preset_path)
            if cfg.max_train_samples is not None:
                lines = lines[: max(cfg.max_train_samples - sum(s.get("clips", 0) for s in sources), 0)]
            add({"kind": "transcripts", "source": cfg.source, "split": split, "clips": len(lines)}, lines)
    for path in texts:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise LmBuildError(f"cannot read --text {path}: {reason}; pass a UTF-8 text file") from None
        add({"kind": "text", "path": str(path.resolve())}, lines)
    if not sentences:
        raise LmBuildError(
            "no text to build a language model from: the transcripts and --text files are empty"
        )
    return Corpus(sentences, sources)


def _split_text(preset: Preset, split: str, preset_path: Path | None = None) -> list[str]:
    """One training split's transcripts, read by the source's own reader: here for local sources, by the
    runner's reader in a child process for hub data (``hub_texts``)."""
    cfg = preset.data
    reader = source(cfg.source)
    if not reader.local:
        if preset_path is None:
            raise LmBuildError(f"hub data ({cfg.dataset_name}) needs the run's preset file to read it")
        return hub_texts(preset_path, split)
    assert cfg.dataset_dir  # the preset model requires dataset_dir for local sources
    try:
        raw = reader.read_split(
            Path(cfg.dataset_dir).expanduser(),
            split,
            cfg.audio_column_name,
            cfg.text_column_name,
            SourceOptions.of(cfg),
        )
    except DataError as exc:
        raise LmBuildError(f"cannot read the training split '{split}': {exc}") from None
    return list(raw.text)


def hub_texts(preset_path: Path, split: str) -> list[str]:
    """A hub split's transcripts from the local datasets / HF cache, read by the runner
    (``python -m ctc_tui.runner.transcripts``: the datasets library stays out of this process)."""
    command = [sys.executable, "-m", "ctc_tui.runner.transcripts", str(preset_path), split]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].removeprefix("error: ") if lines else f"exit status {proc.returncode}"
        raise LmBuildError(
            f"cannot read the training split '{split}': {reason} "
            "(or pass the transcripts as --text FILE with --no-transcripts)"
        )
    return [json.loads(line) for line in proc.stdout.splitlines() if line]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build(run_dir: Path, texts: list[Path], order: int = 3, transcripts: bool = True) -> dict:
    """Estimate the LM and write ``RUN_DIR/lm/``; returns what lm.json holds."""
    if order < 1 or order > 6:
        raise LmBuildError(f"--order {order}: choose an order from 1 to 6 (3 is the default)")
    preset = run_preset(run_dir)
    corpus = read_corpus(preset, texts, transcripts, run_dir / PRESET)
    model = ngram.estimate(corpus.sentences, order)
    arpa = "\n".join(ngram.arpa_lines(model)) + "\n"
    words = sorted(g[0] for g in model.probs[0] if g[0] not in (ngram.EOS, ngram.UNK))
    out = run_dir / LM_DIR
    out.mkdir(exist_ok=True)
    info = {
        "order": order,
        "method": "interpolated modified Kneser-Ney",
        "sources": corpus.sources,
        "sentences": len(corpus.sentences),
        "words": sum(len(s) for s in corpus.sentences),
        "vocabulary": len(words),
        "ngrams": {str(n): len(level) + (n == 1) for n, level in enumerate(model.probs, 1)},  # + <s>
        "discounts": {str(n): list(d) for n, d in enumerate(model.discounts, 1)},
        "normalisation": {
            "chars_to_ignore": preset.data.chars_to_ignore,
            "lower": preset.data.do_lower_case,
            **changed_text_settings(preset.data),
            "word_delimiter": "|",
        },
        "arpa_sha256": hashlib.sha256(arpa.encode()).hexdigest(),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write(out / ARPA, arpa)
    _write(out / UNIGRAMS, "".join(w + "\n" for w in words))
    _write(out / INFO, json.dumps(info, indent=2) + "\n")
    return info
