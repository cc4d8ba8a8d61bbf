"""The results ``ctc-tui eval`` left in a run dir (``RUN_DIR/eval/<label>.json``), read for the views:
``ctc-tui runs``, the runs screen and the wizard's review step.

Each result is a JSON object with at least ``split`` and ``wer`` (and with the LM ``wer_lm``); files that
are not (a torn write, a stranger's file) are skipped, as are files over ``MAX_BYTES``. Standard library
only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core.rundir import EVAL_DIR
from ctc_tui.runs.fmt import printable

#: A result file is a few hundred bytes; anything much larger is not one.
MAX_BYTES = 64 * 1024
#: Results shown in one table cell at most (the rest counted).
SHOWN = 3


@dataclass(frozen=True)
class EvalResult:
    """One split's scores: greedy WER/CER and, when scored with the LM, the LM's."""

    split: str
    clips: int | None
    wer: float
    cer: float | None
    wer_lm: float | None
    cer_lm: float | None
    model: str

    def text(self) -> str:
        """``test.clean 0.412 (LM 0.335)``, for a table cell or a line."""
        lm = f" (LM {self.wer_lm:.3f})" if self.wer_lm is not None else ""
        return f"{printable(self.split, 40)} {self.wer:.3f}{lm}"


def _number(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None  # type: ignore[arg-type]


def _result(data: object) -> EvalResult | None:
    if not isinstance(data, dict) or not isinstance(data.get("split"), str):
        return None
    wer = _number(data.get("wer"))
    if wer is None:
        return None
    clips = data.get("clips")
    return EvalResult(
        split=data["split"],
        clips=clips if isinstance(clips, int) and not isinstance(clips, bool) else None,
        wer=wer,
        cer=_number(data.get("cer")),
        wer_lm=_number(data.get("wer_lm")),
        cer_lm=_number(data.get("cer_lm")),
        model=str(data.get("model", "final")),
    )


def read_results(run_dir: Path) -> list[EvalResult]:
    """The run's eval results, by split label (an unreadable or malformed file is left out)."""
    folder = Path(run_dir) / EVAL_DIR
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    except OSError:
        return []
    results = []
    for path in files:
        try:
            if path.stat().st_size > MAX_BYTES:
                continue
            found = _result(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, RecursionError):
            continue
        if found is not None:
            results.append(found)
    return sorted(results, key=lambda r: r.split)


def summary(results: list[EvalResult], shown: int = SHOWN) -> str:
    """The results in one cell: ``eval 0.412 (LM 0.335), test 0.450 +2 more``; ``-`` when none."""
    if not results:
        return "-"
    text = ", ".join(r.text() for r in results[:shown])
    return text + (f" +{len(results) - shown} more" if len(results) > shown else "")
