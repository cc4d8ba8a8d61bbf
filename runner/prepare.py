"""``python -m ctc_tui.runner.prepare PRESET [KEY=VALUE ...]``: fill the preprocessing cache for a preset
without training (what ``ctc-tui preprocess`` runs, in a child process, on a CPU node before the job).

It does what a run's build-the-data step does (ctc_tui.runner.splits), with the same cache keys: read
the splits, make the tokenizer (the preset's, or the character vocabulary of the training text, written
to a scratch folder: the run writes its own), take the model's feature extractor without loading the
model, and preprocess every split into the cache. A run of the same preset then finds every split
cached. Standard output is one JSON object a line: ``progress`` events (what, done, total, rate) as the
clips are read, ``split`` (name, clips, cached, summary) for each split; errors go to standard error as
one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def emit(kind: str, **fields: Any) -> None:
    """One JSON line on standard output."""
    print(json.dumps({"type": kind, **fields}), flush=True)


def prepare(preset: Any) -> int:
    """Every split of ``preset`` preprocessed into the cache; returns how many came from it already."""
    from ctc_tui.runner import progress
    from ctc_tui.runner.data import preprocess
    from ctc_tui.runner.model import feature_extractor_for, make_tokenizer
    from ctc_tui.runner.splits import cache_settings, read_splits, summary

    splits = read_splits(preset)
    with tempfile.TemporaryDirectory(prefix="ctc-tui-prepare-") as scratch:
        tokenizer, vocab = make_tokenizer(preset, splits.vocabulary_text(), Path(scratch), splits.spaced)
        feature_extractor = feature_extractor_for(preset)
        settings = cache_settings(preset, vocab, feature_extractor)
        cached = 0
        for name, raw in splits.named():
            tracker = progress.Progress(emit, progress.PREPROCESS.format(split=name))
            prepared = preprocess(
                raw,
                name,
                splits.normalise,
                tokenizer,
                feature_extractor,
                preset.data,
                settings,
                on_progress=tracker.update,
            )
            cached += prepared.from_cache
            message = summary(name, prepared)
            emit("split", name=name, clips=len(prepared.dataset), cached=prepared.from_cache, summary=message)
    return cached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ctc_tui.runner.prepare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("preset")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ctc_tui.core.preset import PresetError, load_preset
    from ctc_tui.runner.errors import USER_ERRORS

    try:
        prepare(load_preset(args.preset, args.overrides))
    except PresetError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
