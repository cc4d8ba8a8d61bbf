"""Pieces every exported batch job script shares (``ctc-tui export --slurm`` / ``--pbs``): the preset
embedded in the script, and a new run dir per submission.

The exported job stands alone: the preset is in the script (a quoted heredoc), and every submission makes
a new run dir, ``training.output_dir`` with ``{preset}`` filled at export and ``{timestamp}`` when the job
starts. Pure functions.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from ctc_tui.schedulers.base import SchedulerError

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset

#: Heredoc delimiter of the preset embedded in an exported script.
PRESET_EOF = "CTC_TUI_PRESET_EOF"
#: What ``{timestamp}`` becomes when the job starts (``date`` format).
STAMP_FORMAT = "+%Y%m%d-%H%M%S"


def comment(text: str) -> str:
    """One shell comment line, whatever ``text`` holds (a path may hold a newline)."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]", "?", text)


def run_dir_expression(preset: Preset, preset_name: str, error: type[SchedulerError] = SchedulerError) -> str:
    """The job's run dir as a shell word: ``training.output_dir`` with ``{preset}`` filled now and
    ``{timestamp}`` as ``"$stamp"`` (set when the job starts). ``error`` when the template has other
    placeholders, or does not read back as a plain path (it reaches the ranks as a KEY=VALUE override)."""
    import yaml  # PyYAML loads only when a job script is exported

    template = preset.training.output_dir.replace("{preset}", preset_name)
    parts = template.split("{timestamp}")
    if any("{" in part or "}" in part for part in parts):
        raise error(
            f"training.output_dir {preset.training.output_dir!r}: only {{preset}} and {{timestamp}} "
            "can be filled in"
        )
    sample = "20250101-000000".join(parts)
    try:
        plain = yaml.safe_load(sample) == sample
    except yaml.YAMLError:
        plain = False
    if not plain:
        raise error(
            f"training.output_dir {template!r} does not read back as a plain path; "
            "choose one without ': ', ' #' or leading special characters"
        )
    return '"$stamp"'.join(shlex.quote(part) if part else "" for part in parts)


def embedded_preset(
    preset: Preset, preset_name: str, how: str, error: type[SchedulerError] = SchedulerError
) -> str:
    """The preset's YAML for a heredoc (``how``: what embedded it, for its header)."""
    header = f"preset {preset_name}, embedded by {how}; the job gives training.output_dir on the command line"
    text = preset.to_yaml(header=header)
    if any(line.strip() == PRESET_EOF for line in text.splitlines()):
        raise error(f"the preset contains a line {PRESET_EOF!r}, which ends the embedded preset")
    return text.rstrip("\n")


def heredoc(path: str, text: str) -> list[str]:
    """Shell lines writing ``text`` (an ``embedded_preset``) to ``path`` (a shell word)."""
    return [f"cat > {path} <<'{PRESET_EOF}'", text, PRESET_EOF]


def refuse_nonempty(preset: Preset) -> list[str]:
    """Shell lines that stop the job when its run dir holds files (unless the preset overwrites)."""
    if preset.training.overwrite_output_dir:
        return []
    return [
        'if [ -d "$run_dir" ] && [ -n "$(ls -A "$run_dir")" ]; then',
        (
            '    echo "error: $run_dir exists and is not empty; set training.overwrite_output_dir or '
            'another output_dir" >&2'
        ),
        "    exit 2",
        "fi",
    ]


def job_name_for(name: str) -> str:
    """A default job name: ``ctc-tui-NAME`` with anything unusual in NAME made a dash."""
    return "ctc-tui-" + re.sub(r"[^A-Za-z0-9_.+-]", "-", name)
