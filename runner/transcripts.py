"""``python -m ctc_tui.runner.transcripts PRESET SPLIT``: the transcripts of one split of a preset's data, one
JSON string a line on stdout, as the runner reads them (the datasets library for hub data).

``ctc-tui lm build`` runs this in a child process for hub data (the login-node half never imports the
datasets library): the text column is read from the local datasets / HF cache, offline when
``HF_DATASETS_OFFLINE=1``, without decoding any audio. Errors: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ctc_tui.core.preset import load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.core.sources import DataError


def split_texts(preset_path: Path, split: str) -> list[str]:
    """The split's transcripts (None as ''), by the runner's reader of the preset's source."""
    from ctc_tui.runner.data import read_split  # deferred: the datasets library loads with it

    preset = load_preset(preset_path)
    return list(read_split(preset.data, split, preset.model.token).text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc_tui.runner.transcripts", description=__doc__.splitlines()[0])
    parser.add_argument("preset", type=Path)
    parser.add_argument("split")
    args = parser.parse_args(argv)
    try:
        texts = split_texts(args.preset, args.split)
    except PresetError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    for text in texts:
        out.write(json.dumps(text, ensure_ascii=False) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
