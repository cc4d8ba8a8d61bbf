"""The HPU environment every rank gets, through a real 2-rank mpirun and a DeepSpeed launch of the seed
presets (a stand-in for the Habana stack, as in tests/unit/test_hpu_contract.py: no HPU exists here)."""

from __future__ import annotations

import pytest

from ctc_tui.core.preset import load_preset
from tests.conftest import EAGER_COMPILE, REPO

PROBE = """
import json, os, sys
sys.path.insert(0, {repo!r})
from ctc_tui.runner import distributed

info = distributed.setup()
keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
        "PT_HPU_LAZY_MODE", "HABANA_VISIBLE_MODULES")
with open(os.path.join({out!r}, f"rank-{{info.rank}}.json"), "w") as handle:
    json.dump({{k: os.environ.get(k) for k in keys}}, handle)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, launcher, mode",
    [
        ("librispeech-100h-2card-mpi", "mpi", EAGER_COMPILE),  # eager + compile: PT_HPU_LAZY_MODE=0
        ("librispeech-100h-8card-deepspeed", "deepspeed", ()),
    ],
)
def test_every_rank_gets_the_hpu_environment(tmp_path, name, launcher, mode):
    """The seed presets' launch exactly as ctc-tui runs it (the real mpirun / DeepSpeed launcher, the
    environment launch_env and the free-card choice give), 2 ranks, with a probe module in place of the
    runner (its HPU work cannot run here): every rank sees its own RANK/LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT, PT_HPU_LAZY_MODE and HABANA_VISIBLE_MODULES naming the free cards."""
    import json
    import os
    import subprocess

    from ctc_tui import launchers as launch
    from ctc_tui.check import card_environment
    from ctc_tui.devices import CpuInfo, Detected, Device

    preset = load_preset(REPO / "presets" / f"{name}.yaml", ["launch.world_size=2", *mode])
    assert preset.launch.launcher == launcher and preset.gaudi.use_habana
    # A node whose first card is busy (no Gaudi here: the discovery result is written out).
    cards = [
        Device("hpu", i, "HL-225", "Gaudi2", module_id=m, busy_pids=[4242] if i == 0 else [])
        for i, m in enumerate([3, 1, 0, 2, 7, 5, 4, 6])
    ]
    found = Detected(devices=cards, cpu=CpuInfo(1, 2, 2, 8 << 30, 4 << 30))
    env = {**launch.launch_env(preset), **card_environment(preset, found, {})}
    assert env["HABANA_VISIBLE_MODULES"] == "0,1"  # cards 1 and 2, not the busy card 0 (module 3)
    command = launch.build_command(preset, tmp_path / "preset.yaml")
    at = max(i for i, part in enumerate(command) if part in ("-m", "--module"))
    assert command[at + 1] == "ctc_tui.runner"
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "ctc_probe.py").write_text(PROBE.format(repo=str(REPO), out=str(tmp_path)))
    command[at + 1] = "ctc_probe"
    child_env = {**os.environ, "PT_HPU_LAZY_MODE": "1", **env, "PYTHONPATH": str(probe)}  # a lazy shell
    child_env.pop("RANK", None), child_env.pop("WORLD_SIZE", None), child_env.pop("LOCAL_RANK", None)
    out = subprocess.run(command, cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ranks = {r: json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)}
    for rank, seen in ranks.items():
        assert seen["RANK"] == str(rank) and seen["LOCAL_RANK"] == str(rank) and seen["WORLD_SIZE"] == "2"
        # (the DeepSpeed launcher spells this node 127.0.0.1)
        assert seen["MASTER_ADDR"] in ("localhost", "127.0.0.1") and seen["MASTER_PORT"] == env["MASTER_PORT"]
        assert seen["PT_HPU_LAZY_MODE"] == ("0" if mode else "1") and seen["HABANA_VISIBLE_MODULES"] == "0,1"
