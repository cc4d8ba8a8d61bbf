"""``ctc-tui check`` (and the same check before ``ctc-tui run``): real presets, real files, real tools."""

from __future__ import annotations

import pytest

from ctc_tui.check import (
    Finding,
    check_cards,
    check_data,
    check_gaudi_settings,
    check_model,
    run_checks,
)
from ctc_tui.core.preset import PresetError, validate_data
from ctc_tui.devices import CpuInfo, Detected, Device
from ctc_tui.launchers.mpi import parse_mpirun_version
from tests.conftest import preset_dict

# -- through the real program -------------------------------------------------------------------------


# -- the checks one by one ----------------------------------------------------------------------------


def detected(hpus: int = 0, gpus: int = 0, busy: tuple[int, ...] = (), cores: int = 2) -> Detected:
    devices = [
        Device("hpu", i, "HL-225", "Gaudi2", busy_pids=[1000 + i] if i in busy else []) for i in range(hpus)
    ]
    devices += [
        Device("gpu", i, "NVIDIA H100", "NVIDIA H100", busy_pids=[2000 + i] if i in busy else [])
        for i in range(gpus)
    ]
    return Detected(devices=devices, cpu=CpuInfo(1, cores, cores, 8 << 30, 4 << 30))


def preset_of(tmp_path, **sections):
    return validate_data(preset_dict(tmp_path, **sections), "test")


HPU = {"gaudi": {"use_habana": True}, "training": {"use_cpu": False}}


def test_cards_hpu_counts_and_busy_cards(tmp_path):
    def levels(preset, found):
        return [(f.level, f.key) for f in check_cards(preset, found)]

    eight = preset_of(tmp_path, launch={"launcher": "mpi", "world_size": 8}, **HPU)
    assert levels(eight, detected(hpus=8)) == []
    assert levels(eight, detected(hpus=0)) == [("error", "gaudi.use_habana")]
    (few,) = check_cards(eight, detected(hpus=4))
    assert few.level == "error" and "launch.world_size=4" in few.message
    (taken,) = check_cards(eight, detected(hpus=8, busy=(3,)))
    assert (
        taken.level == "error"
        and "HPU 3 by pid 1003" in taken.message
        and "launch.world_size=7" in taken.message
    )


def test_busy_cards_are_left_out_through_habana_visible_modules(tmp_path):
    from ctc_tui.check import card_environment

    two = preset_of(tmp_path, launch={"launcher": "mpi", "world_size": 2}, **HPU)
    found = detected(hpus=8, busy=(0, 2))
    for index, card in enumerate(found.hpus):
        card.module_id = (index + 3) % 8  # module ids are not the card indices
    assert card_environment(two, found, {}) == {"HABANA_VISIBLE_MODULES": "4,6"}  # cards 1 and 3
    assert card_environment(two, detected(hpus=8), {}) == {}  # all free: the stack's own mapping
    assert card_environment(two, found, {"HABANA_VISIBLE_MODULES": "0,1"}) == {}  # the user's choice stands
    seven = preset_of(tmp_path, launch={"launcher": "mpi", "world_size": 7}, **HPU)
    assert card_environment(seven, found, {}) == {}  # too few free: check_cards reports that
    cpu = preset_of(tmp_path, launch={"launcher": "mpi", "world_size": 2})
    assert card_environment(cpu, found, {}) == {}


def test_cards_gpus_and_cpu(tmp_path):
    cuda = preset_of(tmp_path, launch={"launcher": "torchrun", "world_size": 2}, training={"use_cpu": False})
    assert check_cards(cuda, detected(gpus=2)) == []
    assert [f.level for f in check_cards(cuda, detected(gpus=1))] == ["error"]
    assert [f.key for f in check_cards(cuda, detected(gpus=2, busy=(0,)))] == ["launch.world_size"]
    assert [f.key for f in check_cards(cuda, detected())] == ["training.use_cpu"]
    cpu = preset_of(tmp_path, launch={"launcher": "mpi", "world_size": 4})
    (over,) = check_cards(cpu, detected(cores=2))
    assert over.level == "warning" and "launch.world_size=2" in over.message
    assert check_cards(cpu, detected(cores=4)) == []


def test_hpu_graphs_need_lazy_mode_or_a_compile_backend(tmp_path):
    with pytest.raises(PresetError, match="gaudi.use_lazy_mode=true") as refused:
        preset_of(
            tmp_path,
            gaudi={"use_habana": True, "use_lazy_mode": False, "use_hpu_graphs_for_training": True},
            training={"use_cpu": False},
        )
    assert "training.torch_compile_backend=hpu_backend" in str(refused.value)
    compiled = preset_of(
        tmp_path,
        gaudi={"use_habana": True, "use_lazy_mode": False, "use_hpu_graphs_for_training": True},
        training={"use_cpu": False, "torch_compile": True, "torch_compile_backend": "hpu_backend"},
    )
    assert check_gaudi_settings(compiled) == []
    lazy = preset_of(
        tmp_path,
        gaudi={"use_habana": True, "use_hpu_graphs_for_inference": True},
        training={"use_cpu": False},
    )
    assert check_gaudi_settings(lazy) == []
    off_hpu = preset_of(tmp_path, gaudi={"use_hpu_graphs_for_training": True})
    assert [f.level for f in check_gaudi_settings(off_hpu)] == ["warning"]
    dynamic = preset_of(
        tmp_path,
        gaudi={"use_habana": True, "use_hpu_graphs_for_training": True},
        data={"padding": "longest"},
        training={"use_cpu": False},
    )
    (shapes,) = check_gaudi_settings(dynamic)
    assert (
        shapes.level == "warning"
        and shapes.key == "data.padding"
        and "data.padding=buckets" in shapes.message
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n",
            ("Open MPI", (4, 1)),
        ),
        ("mpirun (Open MPI) 5.0.3\n", ("Open MPI", (5, 0))),
        ("HYDRA build details:\n    Version:                                 4.1.2\n", ("MPICH", None)),
        ("Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619\n", ("Intel MPI", None)),
    ],
)
def test_mpirun_version(text, expected):
    assert parse_mpirun_version(text) == expected


def test_hub_model_offline_needs_the_cache(tmp_path, libri):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    preset = preset_of(tmp_path, model={"architecture": None, "model_name_or_path": "facebook/wav2vec2-base"})
    (missing,) = check_model(preset, env, online=lambda: pytest.fail("must not go online when offline"))
    assert (
        missing.key == "model.model_name_or_path"
        and "huggingface-cli download facebook/wav2vec2-base" in missing.message
    )
    snapshot = tmp_path / "hf" / "hub" / "models--facebook--wav2vec2-base" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert check_model(preset, env, online=lambda: False) == []


def test_local_model_folder_needs_config_json(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    preset = preset_of(tmp_path, model={"architecture": None, "model_name_or_path": str(folder)})
    (finding,) = check_model(preset, {}, online=lambda: True)
    assert "config.json" in finding.message
    (folder / "config.json").write_text("{}")
    assert check_model(preset, {}, online=lambda: True) == []


def test_hub_dataset_offline_needs_the_datasets_cache(tmp_path):
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    preset = preset_of(
        tmp_path, data={"source": "hub", "dataset_name": "openslr/librispeech_asr", "dataset_dir": None}
    )
    (finding,) = check_data(preset, env, online=lambda: False)
    assert finding.key == "data.dataset_name" and "offline" in finding.message
    (tmp_path / "hf" / "datasets" / "openslr___librispeech_asr").mkdir(parents=True)
    assert check_data(preset, env, online=lambda: False) == []


def test_run_checks_lists_errors_first(tmp_path):
    preset = preset_of(
        tmp_path,
        data={"dataset_dir": str(tmp_path / "nowhere")},
        launch={"launcher": "mpi", "world_size": 64},
    )
    findings = run_checks(preset, detected=detected(cores=2), which=lambda name: None)
    assert all(isinstance(f, Finding) and "\n" not in f.message for f in findings)
    levels = [f.level for f in findings]
    assert levels == sorted(levels, key=lambda level: level != "error") and "warning" in levels
    assert {f.key for f in findings if f.level == "error"} == {"launch.launcher", "data.dataset_dir"}
