"""Slurm: the sbatch script's text, and real jobs on a real single-node Slurm cluster.

The session fixture ``slurm`` starts munged, slurmctld and slurmd (Debian's slurm-wlm 22.05 or later) as
child processes with a configuration in a temporary folder (one node: this machine, 2 CPUs, no cgroups),
waits until ``sinfo`` shows the node idle, and stops them all at the end. The jobs are the demo preset's
real ranks (``python -m ctc_tui.runner``) started by ``srun``: submitted and followed by
``ctc-tui run --slurm``, killed and stopped with ``ctc-tui stop``, and an exported script submitted
with plain ``sbatch``.

Without root or without the Slurm packages the fixture fails (never skips): CI runs as root and
``.ci/run`` installs them.
"""

from __future__ import annotations

import pytest

from ctc_tui.cli import main
from ctc_tui.core.preset import load_preset
from ctc_tui.core.shipped import find_preset
from ctc_tui.runner.distributed import setup as dist_setup
from ctc_tui.runner.distributed import slurm_tasks_on_node
from ctc_tui.schedulers import slurm
from tests.conftest import sbatch_lines


def demo(*overrides: str):
    return load_preset(find_preset("demo-cpu"), list(overrides))


# -- the script's text --------------------------------------------------------------------------------------


def test_gpus_for_cuda_presets_a_hint_for_gaudi_and_gres_on_request():
    cuda = demo("training.use_cpu=false")
    assert "--gpus-per-node=1" in sbatch_lines(
        slurm.run_script(cuda, slurm.SlurmOptions(), "p", job_name="j")
    )
    none = slurm.run_script(cuda, slurm.SlurmOptions(gres="none"), "p", job_name="j")
    assert not [o for o in sbatch_lines(none) if o.startswith(("--gpus", "--gres"))]
    gaudi = load_preset(find_preset("librispeech-100h-8card-mpi"))
    script = slurm.run_script(gaudi, slurm.SlurmOptions(nodes=2, gres="hpu:8"), "p", job_name="j")
    assert "--gres=hpu:8" in sbatch_lines(script) and "--ntasks-per-node=8" in sbatch_lines(script)
    assert "export PT_HPU_LAZY_MODE=1" in script and "OMP_NUM_THREADS" not in script
    hint = slurm.run_script(gaudi, slurm.SlurmOptions(), "p", job_name="j")
    assert "# Gaudi cards" in hint and not [o for o in sbatch_lines(hint) if o.startswith("--g")]


def test_time_limits():
    assert [
        slurm.time_seconds(t) for t in ("30", "30:15", "2:00:00", "1-0", "1-2:30", "1-2:30:5", "UNLIMITED")
    ] == [1800, 1815, 7200, 86400, 95400, 95405, None]
    short = slurm.run_script(demo(), slurm.SlurmOptions(time="5"), "p", job_name="j")
    assert "--time=5" in sbatch_lines(short) and not [
        o for o in sbatch_lines(short) if o.startswith("--signal")
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--time", "5h"], "--time '5h' is not a Slurm time"),
        (["--nodes", "0"], "--nodes must be 1 or more"),
        (["--cards-per-node", "-1"], "--cards-per-node must be 1 or more"),
        (["--partition", "a b"], "--partition 'a b'"),
        (["--account", "x\ny"], "--account"),
        (["--job-name", 'say "hi"'], "--job-name"),
        (["--gres", "gpu 8"], "--gres"),
        (["--sbatch-arg=exclusive"], "--sbatch-arg 'exclusive'"),
    ],
)
def test_bad_slurm_options_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    for command in (
        ["export", "demo-cpu", "--slurm"],
        ["run", "demo-cpu", "--slurm", "--output-dir", str(tmp_path / "r")],
    ):
        assert main([*command, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "r").exists()  # nothing made before the options are known to be good


def test_a_resumed_run_keeps_its_slurm_options_unless_others_are_given():
    import argparse

    from ctc_tui.cli import build_parser

    saved = slurm.options_from_json(
        slurm.options_json(
            slurm.SlurmOptions(
                nodes=2, cards_per_node=4, time="1:00:00", partition="p", sbatch_args=("--exclusive",)
            )
        )
    )
    assert saved == slurm.SlurmOptions(
        nodes=2, cards_per_node=4, time="1:00:00", partition="p", sbatch_args=("--exclusive",)
    )
    args = build_parser().parse_args(["run", "--resume", "x", "--time", "30", "--sbatch-arg=--mem=0"])
    assert isinstance(args, argparse.Namespace)
    merged = slurm.options_from_args(args, saved)
    assert (merged.nodes, merged.cards_per_node, merged.time, merged.partition, merged.sbatch_args) == (
        2,
        4,
        "30",
        "p",
        ("--mem=0",),
    )
    assert slurm.options_from_json("{not json") is None and slurm.options_from_json('{"nodes": 0}') is None


def test_ranks_read_slurm_variables_including_compressed_tasks_per_node():
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "7",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2(x3),1",
        "SLURM_TASKS_PER_NODE": "4(x2)",
    }
    info = dist_setup(env)
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (5, 7, 1, 2)
    assert slurm_tasks_on_node({**env, "SLURM_NODEID": "3"}) == 1
    assert slurm_tasks_on_node({"SLURM_NTASKS_PER_NODE": "8", "SLURM_NODEID": "0"}) == 8
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "2(x", "SLURM_NODEID": "0"}) is None
    assert slurm_tasks_on_node({"SLURM_TASKS_PER_NODE": "2", "SLURM_NODEID": "4"}) is None


# -- a real cluster ------------------------------------------------------------------------------------------
