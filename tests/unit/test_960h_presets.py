"""The 960 h recipe: the shipped presets for one node (8 cards) and two nodes (2 x 8), with the hub's
'+'-joined split names, and the folder-layout names their headers give for an offline copy."""

from __future__ import annotations

import re

import pytest

from ctc_tui import launchers
from ctc_tui.core.preset import apply_overrides, load_preset
from ctc_tui.runner.data import load_raw_split
from tests.conftest import REPO, make_librispeech

PRESETS = {
    name: REPO / "presets" / f"{name}.yaml"
    for name in ("librispeech-960h-8card-mpi", "librispeech-960h-2node-16card-mpi")
}
HUB_TRAIN = ["train.clean.100", "train.clean.360", "train.other.500"]
FOLDER_TRAIN = ["train-clean-100", "train-clean-360", "train-other-500"]


def header_overrides(path) -> list[str]:
    """The KEY=VALUE overrides the preset's header gives for a local LibriSpeech copy."""
    header = "".join(line[1:] for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    block = header[header.index("data.source=librispeech") :].replace("\\\n", " ")
    return re.findall(r"data\.\w+=\S+", block.split("\n")[0] + " " + block.split("\n")[1])


@pytest.mark.parametrize("name", PRESETS)
def test_the_hub_names_all_three_training_splits(name):
    preset = load_preset(PRESETS[name])
    data = preset.data
    assert (data.source, data.dataset_name, data.dataset_config_name) == ("hub", "librispeech_asr", "all")
    assert data.train_split_name.split("+") == HUB_TRAIN and data.eval_split_name == "validation.clean"
    assert preset.launch.world_size == 8 and preset.gaudi.use_habana


@pytest.mark.parametrize("name", PRESETS)
def test_the_headers_folder_layout_reads_all_three_splits(name, tmp_path):
    for split in FOLDER_TRAIN:
        make_librispeech(tmp_path, split, rate=16000, speakers=1)
    make_librispeech(tmp_path, "dev-clean", rate=16000, speakers=1)
    overrides = [
        o.replace("/data/LibriSpeech", str(tmp_path)).replace("/shared/LibriSpeech", str(tmp_path))
        for o in header_overrides(PRESETS[name])
    ]
    preset = apply_overrides(load_preset(PRESETS[name]), overrides)
    assert preset.data.train_split_name.split("+") == FOLDER_TRAIN
    train = load_raw_split(preset.data, preset.data.train_split_name)
    one = load_raw_split(preset.data, FOLDER_TRAIN[0])
    assert len(train.text) == 3 * len(one.text)
    assert len(load_raw_split(preset.data, preset.data.eval_split_name).text) == len(one.text)


def test_two_nodes_of_eight_cards_are_sixteen_mpi_ranks(tmp_path):
    hostfile = tmp_path / "hostfile-2x8"
    hostfile.write_text("gaudi-a slots=8\ngaudi-b slots=8\n")
    preset = apply_overrides(
        load_preset(PRESETS["librispeech-960h-2node-16card-mpi"]), [f"launch.hostfile={hostfile}"]
    )
    command = launchers.build_command(
        preset, tmp_path / "preset.yaml", topology=launchers.CpuTopology(2, 32), environ={}
    )
    assert command[:5] == ["mpirun", "-n", "16", "--hostfile", str(hostfile)]
    assert launchers.master_addr(preset) == "gaudi-a"
