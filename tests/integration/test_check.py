"""``ctc-tui check`` (and the same check before ``ctc-tui run``) on the command line: real presets, files,
tools."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from tests.conftest import has, make_audiofolder, make_librispeech, preset_dict, run_cli


def write_preset(tmp_path: Path, data_dir: Path | None = None, **sections) -> Path:
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset_dict(tmp_path, data_dir, **sections), sort_keys=False))
    return path


def errors_of(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("error: ")]


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
    assert (
        line.startswith("error: data.eval_split_name: ")
        and "dev-clean" in line
        and "found: test, train" in line
    )


def test_mpi_without_mpirun_names_the_package(tmp_path, libri):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    out = run_cli(
        "check",
        str(write_preset(tmp_path)),
        "launch.launcher=mpi",
        "launch.world_size=2",
        env={"PATH": str(empty_bin)},
        timeout=60,
    )
    assert out.returncode == 2, out.stdout
    (line,) = errors_of(out.stdout)
    assert (
        line.startswith("error: launch.launcher: mpirun not found") and "apt-get install openmpi-bin" in line
    )


def test_mpi_with_open_mpi_on_path_is_fine(tmp_path, libri):
    assert has("mpirun"), "apt-get install openmpi-bin (.ci/run does)"
    out = run_cli(
        "check", str(write_preset(tmp_path)), "launch.launcher=mpi", "launch.world_size=2", timeout=60
    )
    assert not [line for line in errors_of(out.stdout) if "launch.launcher" in line], out.stdout


def test_another_mpi_is_refused(tmp_path, libri):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mpirun").write_text("#!/bin/sh\necho 'HYDRA build details:'\necho '    Version: 4.1.2'\n")
    (fake / "mpirun").chmod(0o755)
    out = run_cli(
        "check",
        str(write_preset(tmp_path)),
        "launch.launcher=mpi",
        "launch.world_size=2",
        env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"},
        timeout=60,
    )
    assert out.returncode == 2
    assert any("MPICH's mpirun" in line and "openmpi-bin" in line for line in errors_of(out.stdout)), (
        out.stdout
    )


def test_existing_output_dir_is_an_error_naming_resume(tmp_path, libri):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "checkpoint-5").mkdir()
    out = run_cli("check", str(write_preset(tmp_path)), timeout=60)
    assert out.returncode == 2
    (line,) = errors_of(out.stdout)
    assert (
        line.startswith("error: training.output_dir: ") and f"ctc-tui run --resume {tmp_path / 'out'}" in line
    )
    ok = run_cli("check", str(write_preset(tmp_path)), "training.overwrite_output_dir=true", timeout=60)
    assert ok.returncode == 0, ok.stdout


def test_unreachable_hostfile_host_is_an_error_within_seconds(tmp_path, libri):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=1\n192.0.2.1 slots=1  # TEST-NET-1: never answers\n")
    start = time.monotonic()
    out = run_cli(
        "check", str(write_preset(tmp_path)), "launch.launcher=mpi", f"launch.hostfile={hostfile}", timeout=60
    )
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
    assert out.returncode == 0 and "warning" not in out.stdout, out.stdout
    assert "  train  2 clips  0.00 h  16000 Hz" in out.stdout  # the data summary, no rate warning


def test_run_refuses_to_start_and_creates_nothing(tmp_path):
    preset = write_preset(tmp_path, tmp_path / "nowhere")
    out = run_cli("run", str(preset), "--plain", timeout=60)
    assert out.returncode == 2
    assert (
        "pre-flight check" in out.stderr and "data.dataset_dir" in out.stderr and "--no-check" in out.stderr
    )
    assert not (tmp_path / "out").exists()


def test_run_prints_warnings_and_keeps_going_to_the_next_rule(tmp_path, libri):
    """A warning alone never stops a run; the old output-dir rule still answers with --no-check."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("mine")
    out = run_cli("run", str(write_preset(tmp_path)), "--no-check", "--plain", timeout=60)
    assert out.returncode == 2 and "pre-flight" not in out.stderr and "--resume" in out.stderr


def test_a_run_dir_too_long_for_its_sockets_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / ("a-long-run-directory-name-" * 4)
    check = run_cli("check", "demo-cpu", f"training.output_dir={out}", timeout=60)
    assert check.returncode == 2, check.stdout + check.stderr
    assert any(
        "training.output_dir" in e and "shorter training.output_dir" in e for e in errors_of(check.stdout)
    )
    run = run_cli("run", "demo-cpu", "--output-dir", str(out), "--detach", timeout=60)
    assert run.returncode == 2 and "the pre-flight check found 1 problem" in run.stderr, run.stderr
    assert "longer than a Unix socket path can be" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
