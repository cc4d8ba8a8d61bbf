"""``ctc-tui check`` (and the same check before ``ctc-tui run``): real presets, real files, real tools."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from tests.conftest import has, make_audiofolder, make_librispeech, run_cli

from ctc_tui.check import (
    Finding,
    check_cards,
    check_data,
    check_gaudi_settings,
    check_model,
    run_checks,
)
from ctc_tui.devices import CpuInfo, Detected, Device
from ctc_tui.core.preset import validate_data
from ctc_tui.launchers.mpi import parse_mpirun_version


def preset_dict(tmp_path: Path, data_dir: Path | None = None, **sections) -> dict:
    base = {
        "model": {"architecture": "wav2vec2-tiny"},
        "data": {"source": "librispeech", "dataset_dir": str(data_dir or tmp_path / "libri"),
                 "train_split_name": "train", "eval_split_name": "test"},
        "training": {"output_dir": str(tmp_path / "out"), "use_cpu": True, "max_steps": 5},
        "launch": {"launcher": "single", "world_size": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


def write_preset(tmp_path: Path, data_dir: Path | None = None, **sections) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset_dict(tmp_path, data_dir, **sections), sort_keys=False))
    return path


def errors_of(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("error: ")]


@pytest.fixture
def libri(tmp_path) -> Path:
    root = tmp_path / "libri"
    make_librispeech(root, "train", rate=16000)
    make_librispeech(root, "test", rate=16000, speakers=1)
    return root


# -- through the real program -------------------------------------------------------------------------


def test_the_demo_preset_passes_here():
    out = run_cli("check", "demo-cpu", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not errors_of(out.stdout)


def test_a_good_local_preset_is_ready(tmp_path, libri):
    out = run_cli("check", str(write_preset(tmp_path)), timeout=60)
    assert out.returncode == 0, out.stdout
    assert "ready to run" in out.stdout


def test_missing_data_dir_is_an_error_naming_key_and_fix(tmp_path):
    out = run_cli("check", str(write_preset(tmp_path, tmp_path / "nowhere")), timeout=60)
    assert out.returncode == 2
    (line,) = errors_of(out.stdout)
    assert line.startswith("error: data.dataset_dir: ") and str(tmp_path / "nowhere") in line
    assert "fix data.dataset_dir" in line
    assert "Traceback" not in out.stderr


def test_missing_split_names_the_split_key(tmp_path, libri):
    out = run_cli("check", str(write_preset(tmp_path)), "data.eval_split_name=dev-clean", timeout=60)
    assert out.returncode == 2
    (line,) = errors_of(out.stdout)
    assert line.startswith("error: data.eval_split_name: ") and "dev-clean" in line and "found: test, train" in line


def test_mpi_without_mpirun_names_the_package(tmp_path, libri):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    out = run_cli("check", str(write_preset(tmp_path)), "launch.launcher=mpi", "launch.world_size=2",
                  env={"PATH": str(empty_bin)}, timeout=60)
    assert out.returncode == 2, out.stdout
    (line,) = errors_of(out.stdout)
    assert line.startswith("error: launch.launcher: mpirun not found") and "apt-get install openmpi-bin" in line


def test_mpi_with_open_mpi_on_path_is_fine(tmp_path, libri):
    assert has("mpirun"), "apt-get install openmpi-bin (.ci/run does)"
    out = run_cli("check", str(write_preset(tmp_path)), "launch.launcher=mpi", "launch.world_size=2", timeout=60)
    assert not [line for line in errors_of(out.stdout) if "launch.launcher" in line], out.stdout


def test_another_mpi_is_refused(tmp_path, libri):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mpirun").write_text("#!/bin/sh\necho 'HYDRA build details:'\necho '    Version: 4.1.2'\n")
    (fake / "mpirun").chmod(0o755)
    out = run_cli("check", str(write_preset(tmp_path)), "launch.launcher=mpi", "launch.world_size=2",
                  env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}, timeout=60)
    assert out.returncode == 2
    assert any("MPICH's mpirun" in line and "openmpi-bin" in line for line in errors_of(out.stdout)), out.stdout


def test_existing_output_dir_is_an_error_naming_resume(tmp_path, libri):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoint-5").mkdir()
    out = run_cli("check", str(write_preset(tmp_path)), timeout=60)
    assert out.returncode == 2
    (line,) = errors_of(out.stdout)
    assert line.startswith("error: training.output_dir: ") and f"ctc-tui run --resume {tmp_path / 'out'}" in line
    ok = run_cli("check", str(write_preset(tmp_path)), "training.overwrite_output_dir=true", timeout=60)
    assert ok.returncode == 0, ok.stdout


def test_unreachable_hostfile_host_is_an_error_within_seconds(tmp_path, libri):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=1\n192.0.2.1 slots=1  # TEST-NET-1: never answers\n")
    start = time.monotonic()
    out = run_cli("check", str(write_preset(tmp_path)), "launch.launcher=mpi", f"launch.hostfile={hostfile}",
                  timeout=60)
    elapsed = time.monotonic() - start
    assert out.returncode == 2, out.stdout
    (line,) = [line for line in errors_of(out.stdout) if "launch.hostfile" in line]
    assert "192.0.2.1" in line and ("ssh-copy-id 192.0.2.1" in line or "openssh-client" in line)
    assert "localhost" not in line
    assert elapsed < 15, elapsed


def test_resample_warning_for_22khz_audio(tmp_path):
    root = tmp_path / "libri"
    make_librispeech(root, "train", rate=22050)
    make_librispeech(root, "test", rate=22050, speakers=1)
    out = run_cli("check", str(write_preset(tmp_path, root)), timeout=60)
    assert out.returncode == 0, out.stdout
    warnings = [line for line in out.stdout.splitlines() if line.startswith("warning: ")]
    assert any("22050 Hz" in w and "resampled to 16000 Hz" in w for w in warnings), out.stdout


def test_audiofolder_at_16khz_has_no_rate_warning(tmp_path):
    root = tmp_path / "af"
    make_audiofolder(root, "train", [("a.wav", "one"), ("b.wav", "two")])
    make_audiofolder(root, "test", [("c.wav", "three")])
    out = run_cli("check", str(write_preset(tmp_path, root, data={"source": "audiofolder"})), timeout=60)
    assert out.returncode == 0 and "Hz" not in out.stdout, out.stdout


def test_run_refuses_to_start_and_creates_nothing(tmp_path):
    preset = write_preset(tmp_path, tmp_path / "nowhere")
    out = run_cli("run", str(preset), "--plain", timeout=60)
    assert out.returncode == 2
    assert "pre-flight check" in out.stderr and "data.dataset_dir" in out.stderr and "--no-check" in out.stderr
    assert not (tmp_path / "out").exists()


def test_run_prints_warnings_and_keeps_going_to_the_next_rule(tmp_path, libri):
    """A warning alone never stops a run; the old output-dir rule still answers with --no-check."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("mine")
    out = run_cli("run", str(write_preset(tmp_path)), "--no-check", "--plain", timeout=60)
    assert out.returncode == 2 and "pre-flight" not in out.stderr and "--resume" in out.stderr


# -- the checks one by one ----------------------------------------------------------------------------


def detected(hpus: int = 0, gpus: int = 0, busy: tuple[int, ...] = (), cores: int = 2) -> Detected:
    devices = [Device("hpu", i, "HL-225", "Gaudi2", busy_pids=[1000 + i] if i in busy else []) for i in range(hpus)]
    devices += [Device("gpu", i, "NVIDIA H100", "NVIDIA H100", busy_pids=[2000 + i] if i in busy else [])
                for i in range(gpus)]
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
    assert taken.level == "error" and "HPU 3 by pid 1003" in taken.message and "launch.world_size=7" in taken.message


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


def test_hpu_graphs_need_lazy_mode(tmp_path):
    eager = preset_of(tmp_path, gaudi={"use_habana": True, "use_lazy_mode": False, "use_hpu_graphs_for_training": True},
                      training={"use_cpu": False})
    (finding,) = check_gaudi_settings(eager)
    assert finding.level == "error" and "gaudi.use_lazy_mode=true" in finding.message
    lazy = preset_of(tmp_path, gaudi={"use_habana": True, "use_hpu_graphs_for_inference": True},
                     training={"use_cpu": False})
    assert check_gaudi_settings(lazy) == []
    off_hpu = preset_of(tmp_path, gaudi={"use_hpu_graphs_for_training": True})
    assert [f.level for f in check_gaudi_settings(off_hpu)] == ["warning"]
    dynamic = preset_of(tmp_path, gaudi={"use_habana": True, "use_hpu_graphs_for_training": True},
                        data={"padding": "longest"}, training={"use_cpu": False})
    (shapes,) = check_gaudi_settings(dynamic)
    assert shapes.level == "warning" and shapes.key == "data.padding" and "data.padding=buckets" in shapes.message


@pytest.mark.parametrize("text, expected", [
    ("mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n", ("Open MPI", (4, 1))),
    ("mpirun (Open MPI) 5.0.3\n", ("Open MPI", (5, 0))),
    ("HYDRA build details:\n    Version:                                 4.1.2\n", ("MPICH", None)),
    ("Intel(R) MPI Library for Linux* OS, Version 2021.10 Build 20230619\n", ("Intel MPI", None)),
])
def test_mpirun_version(text, expected):
    assert parse_mpirun_version(text) == expected


def test_hub_model_offline_needs_the_cache(tmp_path, libri):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    preset = preset_of(tmp_path, model={"architecture": None, "model_name_or_path": "facebook/wav2vec2-base"})
    (missing,) = check_model(preset, env, online=lambda: pytest.fail("must not go online when offline"))
    assert missing.key == "model.model_name_or_path" and "huggingface-cli download facebook/wav2vec2-base" in missing.message
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
    preset = preset_of(tmp_path, data={"source": "hub", "dataset_name": "openslr/librispeech_asr",
                                       "dataset_dir": None})
    (finding,) = check_data(preset, env, online=lambda: False)
    assert finding.key == "data.dataset_name" and "offline" in finding.message
    (tmp_path / "hf" / "datasets" / "openslr___librispeech_asr").mkdir(parents=True)
    assert check_data(preset, env, online=lambda: False) == []


def test_run_checks_lists_errors_first(tmp_path):
    preset = preset_of(tmp_path, data={"dataset_dir": str(tmp_path / "nowhere")},
                       launch={"launcher": "mpi", "world_size": 64})
    findings = run_checks(preset, detected=detected(cores=2), which=lambda name: None)
    assert all(isinstance(f, Finding) and "\n" not in f.message for f in findings)
    levels = [f.level for f in findings]
    assert levels == sorted(levels, key=lambda level: level != "error") and "warning" in levels
    assert {f.key for f in findings if f.level == "error"} == {"launch.launcher", "data.dataset_dir"}
