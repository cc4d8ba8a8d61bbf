"""Launch commands in a real shell, and the addresses and tools they need on this machine."""

from __future__ import annotations

import subprocess

from ctc_tui.core.preset import load_preset
from ctc_tui.launchers import command_script
from tests.conftest import REPO

SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


def preset(*overrides: str):
    return load_preset(SEED, list(overrides))


def test_command_script_survives_a_real_shell(tmp_path):
    """The reference's own README command breaks in bash; every argument here comes back intact."""
    nasty = ['",?.!-;:\\"“%‘”"', "it's", "a b", "$HOME", "`id`", "--x=1;rm -rf /"]
    script = command_script(["printf", "%s\\n", *nasty], {"WEIRD": "x'y\"z $PATH"})
    path = tmp_path / "command.sh"
    path.write_text(script)
    out = subprocess.run(["sh", str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == nasty


def test_log_transport_advertises_the_address_the_hosts_can_reach(tmp_path, monkeypatch):
    from ctc_tui.launchers import log_transport
    from ctc_tui.launchers.hostfile import advertise_address

    monkeypatch.delenv("CTC_TUI_LOG_HOST", raising=False)
    assert log_transport(preset()) == {}  # one node: the run dir's Unix socket only
    hostfile = tmp_path / "hosts"
    hostfile.write_text("no-such-host.invalid slots=1\nlocalhost slots=1\n")
    assert advertise_address(hostfile) == "127.0.0.1"  # every host is this machine: loopback is right
    transport = log_transport(preset(f"launch.hostfile={hostfile}"))
    # issue 11: the supervisor listens on the address ranks are given, not on every interface
    assert transport["tcp_bind"] == "127.0.0.1" and transport["tcp_advertise"] == "127.0.0.1"
    assert len(transport["token"]) >= 24 and "deepspeed_env" not in transport
    from_env = log_transport(preset(f"launch.hostfile={hostfile}"), {"CTC_TUI_LOG_HOST": "login-1"})
    assert from_env["tcp_advertise"] == "login-1"
    chosen = preset(f"launch.hostfile={hostfile}", "launch.log_host=10.9.9.9")
    assert log_transport(chosen, {"CTC_TUI_LOG_HOST": "login-1"})["tcp_advertise"] == "10.9.9.9"
    ds = log_transport(preset(f"launch.hostfile={hostfile}", "launch.launcher=deepspeed"), {})
    assert {"CTC_TUI_LOG_SOCKET", "MASTER_ADDR"} <= set(ds["deepspeed_env"])
    assert "CTC_TUI_TOKEN" not in ds["deepspeed_env"]  # ranks read RUN_DIR/run-token


def test_check_wants_pdsh_for_deepspeed_on_other_hosts(tmp_path):
    from ctc_tui.check import check_hostfile

    hostfile = tmp_path / "hosts"
    hostfile.write_text("gaudi-a slots=8\ngaudi-b slots=8\n")
    ssh_works = {"ssh": "/bin/true"}  # every host answers
    ds = preset("launch.launcher=deepspeed", f"launch.hostfile={hostfile}")
    findings = check_hostfile(ds, which=ssh_works.get)
    assert [f.message for f in findings if "pdsh" in f.message], findings
    assert not check_hostfile(ds, which={**ssh_works, "pdsh": "/usr/bin/pdsh"}.get)
    mpi = preset(f"launch.hostfile={hostfile}")
    assert not check_hostfile(mpi, which=ssh_works.get)  # mpirun needs no pdsh
