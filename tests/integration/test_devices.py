"""``ctc-tui devices`` really run, on this machine and with stand-in hl-smi / nvidia-smi tools on PATH
(the parsers on captured outputs, and where those come from: tests/unit/test_devices.py)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from tests.conftest import REPO, run_cli

DATA = REPO / "tests" / "data" / "devices"


def captured(name: str) -> str:
    return (DATA / name).read_text()


def fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def path_with(folder: Path) -> dict:
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_devices_json_on_this_machine_reports_the_cpu():
    out = run_cli("devices", "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    cpu = found["cpu"]
    assert cpu["logical_cpus"] == os.cpu_count()
    assert 1 <= cpu["physical_cores"] <= cpu["logical_cpus"] and cpu["sockets"] >= 1
    assert cpu["memory_total"] > cpu["memory_available"] > 0
    if not any(
        Path(d, tool).exists()
        for d in os.environ.get("PATH", "").split(os.pathsep)
        for tool in ("hl-smi", "nvidia-smi")
    ):
        assert found["devices"] == []


def test_devices_table_on_this_machine():
    out = run_cli("devices", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "CPU:" in out.stdout and "physical cores" in out.stdout and "Traceback" not in out.stderr


def test_devices_through_a_stand_in_hl_smi(tmp_path):
    """The whole path (tool call, CSV, process table) with an hl-smi that prints the captured outputs."""
    fake_tool(
        tmp_path / "bin",
        "hl-smi",
        f'if [ "$1" = "-Q" ]; then cat {DATA / "hl-smi-gaudi2-8.csv"}; '
        f"else cat {DATA / 'hl-smi-gaudi2-8-table.txt'}; fi\n",
    )
    out = run_cli("devices", "--json", env=path_with(tmp_path / "bin"), timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    hpus = [d for d in found["devices"] if d["kind"] == "hpu"]
    assert len(hpus) == 8 and found["sources"]["hpu"] == "hl-smi"
    assert [d["busy_pids"] for d in hpus if d["busy_pids"]] == [[107684]] and hpus[3]["busy_pids"] == [107684]
    assert [d["module_id"] for d in hpus] == [3, 1, 0, 2, 7, 5, 4, 6]
    table = run_cli("devices", env=path_with(tmp_path / "bin"), timeout=60)
    assert "Gaudi2" in table.stdout and "pid 107684" in table.stdout


def test_an_hl_smi_without_module_id_is_asked_again_without_it(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text(
        "\n".join(
            ", ".join(c for i, c in enumerate(line.split(", ")) if i != 1)
            for line in captured("hl-smi-gaudi2-8.csv").splitlines()
        )
        + "\n"
    )
    fake_tool(
        tmp_path / "bin",
        "hl-smi",
        'case "$2" in *module_id*) echo "Invalid query field: module_id" >&2; exit 2 ;; esac\n'
        f'if [ "$1" = "-Q" ]; then cat {old}; fi\n',
    )
    found = json.loads(run_cli("devices", "--json", env=path_with(tmp_path / "bin"), timeout=60).stdout)
    hpus = [d for d in found["devices"] if d["kind"] == "hpu"]
    assert len(hpus) == 8 and {d["module_id"] for d in hpus} == {None} and found["sources"]["hpu"] == "hl-smi"


def test_unreadable_hl_smi_output_is_a_note_not_a_traceback(tmp_path):
    fake_tool(tmp_path / "bin", "hl-smi", f"cat {DATA / 'hl-smi-malformed.txt'}\n")
    out = run_cli("devices", "--json", env=path_with(tmp_path / "bin"), timeout=60)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    found = json.loads(out.stdout)
    assert found["devices"] == [] and any("could not read hl-smi output" in n for n in found["notes"])


def test_a_hanging_tool_is_given_up_on(tmp_path):
    fake_tool(tmp_path / "bin", "nvidia-smi", "sleep 30\n")
    start = time.monotonic()
    out = run_cli("devices", "--json", env=path_with(tmp_path / "bin"), timeout=60)
    assert out.returncode == 0
    assert time.monotonic() - start < 20
    assert any("did not answer" in n for n in json.loads(out.stdout)["notes"])


def test_nvidia_gpus_through_a_stand_in_nvidia_smi(tmp_path):
    fake_tool(
        tmp_path / "bin",
        "nvidia-smi",
        'case "$1" in --query-gpu=*) cat ' + str(DATA / "nvidia-smi-2gpu.csv") + " ;; "
        "--query-compute-apps=*) cat " + str(DATA / "nvidia-smi-2gpu-apps.csv") + " ;; esac\n",
    )
    found = json.loads(run_cli("devices", "--json", env=path_with(tmp_path / "bin"), timeout=60).stdout)
    gpus = [d for d in found["devices"] if d["kind"] == "gpu"]
    assert [g["busy_pids"] for g in gpus] == [[48213], []]
