"""Slurm's job scripts: the ``#SBATCH`` lines, the one ``srun`` that starts every rank, the job of a
``ctc-tui run --slurm`` and the job ``ctc-tui export --slurm`` writes. Pure functions: text only."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.launchers.base import RANK_MODULE
from ctc_tui.launchers.environment import launch_env
from ctc_tui.schedulers import jobscript
from ctc_tui.schedulers.jobscript import PRESET_EOF, comment, job_name_for
from ctc_tui.schedulers.slurm.options import BAD_CHARS, SlurmError, SlurmOptions, check_options, time_seconds

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset

__all__ = ["PRESET_EOF", "export_script", "job_name_for", "run_script", "sbatch_options", "srun_command"]

#: A time limit at least this long gets ``--signal=INT@STOP_LEAD``: the ranks checkpoint and exit 0
#: (a resumable "stopped" run) before Slurm kills them at the limit.
STOP_LEAD = 120
STOP_LEAD_MIN_LIMIT = 600

_PLAIN = re.compile(r"[A-Za-z0-9_.,:@%+/=-]*")  # needs no quotes on an #SBATCH line (fullmatch)


def cards_per_node(preset: Preset, options: SlurmOptions) -> int:
    return options.cards_per_node or preset.launch.world_size


def _shape(nodes: int, per_node: int) -> str:
    return f"{nodes * per_node} ranks ({nodes} node{'s' if nodes != 1 else ''} x {per_node} cards)"


def sbatch_word(text: str) -> str:
    """``text`` as sbatch reads it from an ``#SBATCH`` line: sbatch groups words with double quotes
    (not a POSIX shell's quoting), so a value with spaces is double-quoted; quotes, backslashes and
    control characters are refused by check_options."""
    if BAD_CHARS.search(text):
        raise SlurmError(f"{text!r} cannot be written on an #SBATCH line")
    return text if _PLAIN.fullmatch(text) else f'"{text}"'


def _option(name: str, value: object) -> str:
    return f"#SBATCH --{name}={sbatch_word(str(value))}"


def _extra_option(arg: str) -> str:
    name, sep, value = arg.partition("=")
    return f"#SBATCH {name}{sep}{sbatch_word(value)}" if sep else f"#SBATCH {sbatch_word(arg)}"


def sbatch_options(preset: Preset, options: SlurmOptions, job_name: str) -> list[str]:
    """The ``#SBATCH`` lines."""
    check_options(options)
    per_node = cards_per_node(preset, options)
    lines = [
        _option("job-name", options.job_name or job_name),
        _option("nodes", options.nodes),
        _option("ntasks-per-node", per_node),
    ]
    if options.cpus_per_task:
        lines.append(_option("cpus-per-task", options.cpus_per_task))
    if options.gres and options.gres != "none":
        lines.append(_option("gres", options.gres))
    elif options.gres is None and preset.device_kind == "cuda-or-cpu":
        lines.append(_option("gpus-per-node", per_node))
    elif options.gres is None and preset.device_kind == "hpu":
        lines.append(
            "# Gaudi cards: Slurm has no standard name for them; if your cluster counts them as a generic "
            "resource, add it (ctc-tui --gres NAME:COUNT)."
        )
    if options.time:
        lines.append(_option("time", options.time))
        limit = time_seconds(options.time)
        if limit is not None and limit >= STOP_LEAD_MIN_LIMIT:
            lines.append(_option("signal", f"INT@{STOP_LEAD}"))
    if options.partition:
        lines.append(_option("partition", options.partition))
    if options.account:
        lines.append(_option("account", options.account))
    lines += [_extra_option(arg) for arg in options.sbatch_args]
    return lines


def rank_env(preset: Preset) -> dict[str, str]:
    """What every rank needs from ``launch_env`` except the rendezvous address, which the job
    takes from its own allocation."""
    env = launch_env(preset)
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    env.pop("OMP_NUM_THREADS", None)  # set below from the job's cpus per task
    return env


def srun_command(preset: Preset, options: SlurmOptions, runner: list[str]) -> list[str]:
    """One task per card; any rank that fails ends them all. srun is given --cpus-per-task itself (since
    Slurm 22.05 it no longer takes it from the allocation)."""
    per_node = cards_per_node(preset, options)
    cmd = [
        "srun",
        "--kill-on-bad-exit=1",
        f"--nodes={options.nodes}",
        f"--ntasks-per-node={per_node}",
        f"--ntasks={options.nodes * per_node}",
    ]
    if options.cpus_per_task:
        cmd.append(f"--cpus-per-task={options.cpus_per_task}")
    return [*cmd, *runner]


def _port_line(preset: Preset) -> str:
    """The rendezvous port: the preset's, else one derived from the job id, so jobs that share a node
    do not meet at the same port."""
    if preset.launch.master_port is not None:
        return f"export MASTER_PORT={preset.launch.master_port}"
    return 'export MASTER_PORT="$((20000 + SLURM_JOB_ID % 20000))"'


def _body(preset: Preset, options: SlurmOptions) -> list[str]:
    """The shell lines every job starts with (rendezvous address and environment)."""
    lines = [
        "set -euo pipefail",
        ': "${SLURM_JOB_ID:?submit this script with sbatch}"',
        "# Rank 0 runs on the allocation's first host.",
        'mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        'export MASTER_ADDR="${hosts[0]}"',
        _port_line(preset),
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(rank_env(preset).items())]
    if not preset.gaudi.use_habana:  # CPU/CUDA ranks must not oversubscribe the cores with intra-op threads
        lines.append('export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"')
    lines.append(
        'echo "ctc-tui: Slurm job $SLURM_JOB_ID: $SLURM_NTASKS ranks on $SLURM_JOB_NODELIST, rank 0 at '
        '$MASTER_ADDR:$MASTER_PORT"'
    )
    return lines


def run_script(
    preset: Preset,
    options: SlurmOptions,
    preset_file: str | Path,
    *,
    job_name: str,
    python: str | None = None,
    resume: bool = False,
) -> str:
    """The job of one ``ctc-tui run --slurm``: its run dir (the preset's output_dir) and preset file exist."""
    runner = [python or sys.executable, "-m", RANK_MODULE, str(preset_file)] + (
        ["--resume"] if resume else []
    )
    per_node = cards_per_node(preset, options)
    head = [
        "#!/bin/bash",
        comment(
            f"Written by ctc-tui for the run {preset.training.output_dir}: {_shape(options.nodes, per_node)}."
        ),
        "# ctc-tui run --slurm submits it and follows it; sbatch THIS_FILE runs it without following.",
        *sbatch_options(preset, options, job_name),
    ]
    body = _body(preset, options)
    body.append("exec " + " ".join(shlex.quote(part) for part in srun_command(preset, options, runner)))
    return "\n".join(head + body) + "\n"


def export_script(
    preset: Preset, options: SlurmOptions, *, preset_name: str, python: str | None = None
) -> str:
    """A job that stands alone (``sbatch FILE``; see ``jobscript``). Without a supervisor, each rank
    writes ``logs/rank-N.log`` and ``logs/events-rank-N.jsonl``."""
    run_dir = jobscript.run_dir_expression(preset, preset_name, SlurmError)
    text = jobscript.embedded_preset(preset, preset_name, "ctc-tui export --slurm", SlurmError)
    per_node = cards_per_node(preset, options)
    runner = [python or sys.executable, "-m", RANK_MODULE]
    srun = " ".join(shlex.quote(part) for part in srun_command(preset, options, runner))
    lines = [
        "#!/bin/bash",
        comment(
            f"Written by ctc-tui export --slurm: preset {preset_name}, {_shape(options.nodes, per_node)}."
        ),
        "# Submit with: sbatch THIS_FILE (each submission trains into a new run dir).",
        *sbatch_options(preset, options, job_name_for(preset_name)),
        *_body(preset, options),
        f"stamp=$(date {jobscript.STAMP_FORMAT})",
        f"run_dir={run_dir}",
        *jobscript.refuse_nonempty(preset),
        # private, as ctc-tui run makes run dirs (ctc_tui.core.private)
        'mkdir -p -m "${CTC_TUI_RUN_DIR_MODE:-700}" "$run_dir" "$run_dir/logs"',
        *jobscript.heredoc('"$run_dir/preset.yaml"', text),
        'export CTC_TUI_RUN_DIR="$run_dir"',
        f'exec {srun} "$run_dir/preset.yaml" "training.output_dir=$run_dir"',
    ]
    return "\n".join(lines) + "\n"
