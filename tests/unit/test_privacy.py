"""Issue 11, items 5 and 6: secrets stay private, nothing from a preset reaches a shell unquoted, run dirs
are private. Host names, the secret files (0600, O_EXCL, O_NOFOLLOW), run dir modes and ownership
(os.chown to another uid: the tests run as root), redaction in show-command / import-command / export,
and the DeepSpeed remote-shell refusals."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ctc_tui import cli
from ctc_tui.core import private, rundir
from ctc_tui.core.hosts import host_problem
from ctc_tui.core.preset import load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.launchers import deepspeed_env_text, read_hostfile
from ctc_tui.runs import service
from ctc_tui.runs.service import ResumeRequest, RunError, StartRequest
from tests.conftest import REPO

CPU = REPO / "presets" / "demo-cpu.yaml"
SECRET = "hf_VerySecretHubToken42"
OTHER_UID = 4242


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def token_preset(tmp_path: Path) -> Path:
    """demo-cpu with a Hub token in its model section."""
    path = tmp_path / "with-token.yaml"
    path.write_text(load_preset(CPU).to_yaml().replace("model:\n", f"model:\n  token: {SECRET}\n", 1))
    return path


# -- host names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["node-1", "gaudi07.cluster.example.org", "10.0.0.7", "fe80::1", "::1", "2001:db8::42", "a"]
)
def test_host_names_and_addresses_pass(host):
    assert host_problem(host) is None


@pytest.mark.parametrize(
    "host, why",
    [
        ("-oProxyCommand=touch /tmp/x", "starts with '-'"),
        ("node$(id)", "not a host name"),
        ("node`id`", "not a host name"),
        ('node"x', "not a host name"),
        ("node;id", "not a host name"),
        ("[fe80::1]", "not an IPv6"),
        ("fe80::1:22:zz", "not an IPv6"),
        ("-node", "starts with '-'"),
        ("node-.x", "not a host name"),
        ("", "empty"),
        ("a" * 64, "not a host name"),
    ],
)
def test_anything_else_is_refused_with_the_reason(host, why):
    assert why in host_problem(host)


def test_preset_host_settings_are_validated_with_key_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("launch:\n  launcher: deepspeed\n  master_addr: '$(touch /tmp/x)'\n  log_host: -oX\n")
    with pytest.raises(PresetError) as caught:
        load_preset(path)
    text = caught.value.render()
    assert (
        "line 3" in text and "launch.master_addr" in text and "line 4" in text and "launch.log_host" in text
    )


def test_hostfile_hosts_are_validated_with_their_line(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("node-a slots=2\n# fine\n-oProxyCommand=sh slots=1\n")
    with pytest.raises(ValueError, match=rf"{hostfile}:3: host '-oProxyCommand=sh' starts with '-'"):
        read_hostfile(hostfile)
    hostfile.write_text("node-a slots=2\n[fe80::1] slots=1\n")
    with pytest.raises(ValueError, match=":2: host"):
        read_hostfile(hostfile)


def test_check_gives_ssh_a_double_dash_before_the_host(tmp_path, monkeypatch):
    from ctc_tui import check

    seen = []

    def fake_run(argv, timeout):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(check, "run_bounded", fake_run)
    assert check._ssh("node-b", "/usr/bin/ssh") is None
    assert seen[0][-3:] == ["--", "node-b", "true"]


# -- secret files -----------------------------------------------------------------------------------


def test_a_secret_file_is_new_and_0600_even_with_a_wide_umask(tmp_path):
    old = os.umask(0)
    try:
        path = private.write_secret(tmp_path / "run-token", "t0k")
    finally:
        os.umask(old)
    assert mode(path) == 0o600 and private.read_secret(path) == "t0k"
    private.write_secret(path, "second")  # replaced, not appended or written through
    assert private.read_secret(path) == "second" and mode(path) == 0o600


def test_a_planted_symlink_is_never_written_through_nor_read(tmp_path):
    target = tmp_path / "victim"
    target.write_text("untouched")
    link = tmp_path / "run-token"
    link.symlink_to(target)
    with pytest.raises(private.PrivacyError, match="is a symbolic link"):
        private.read_secret(link)
    private.write_secret(link, "t0k")
    assert target.read_text() == "untouched" and not link.is_symlink() and mode(link) == 0o600


def test_a_secret_file_others_can_read_or_own_is_refused(tmp_path):
    path = tmp_path / "hf-token"
    path.write_text("x")
    os.chmod(path, 0o644)
    with pytest.raises(private.PrivacyError, match=r"has mode 644, open to others: it must be 0600"):
        private.read_secret(path)
    os.chmod(path, 0o600)
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(private.PrivacyError, match="belongs to uid 4242, not to you"):
        private.read_secret(path)
    assert private.run_token(tmp_path) is None  # a rank just goes on without the socket


def test_the_hub_token_comes_from_hf_token_then_the_run_file(tmp_path):
    assert private.hf_token(tmp_path, {}) is None
    private.write_secret(tmp_path / rundir.HF_TOKEN_FILE, SECRET)
    assert private.hf_token(tmp_path, {}) == SECRET
    assert private.hf_token(tmp_path, {"HF_TOKEN": "env"}) == "env"


def test_ranks_read_the_run_token_from_the_run_dir_not_the_environment(tmp_path, monkeypatch):
    from ctc_tui.runner import report

    monkeypatch.setenv("CTC_TUI_TOKEN", "from-env")
    assert report._run_token(tmp_path) is None
    private.write_secret(tmp_path / rundir.RUN_TOKEN, "from-file")
    assert report._run_token(tmp_path) == "from-file" and report._run_token(None) is None


# -- run dirs ---------------------------------------------------------------------------------------


def prepare(tmp_path: Path, *overrides: str, preset: str | Path = "demo-cpu", name: str = "run"):
    return service.prepare(
        StartRequest(preset=str(preset), overrides=overrides, output_dir=str(tmp_path / name), check=False)
    )


def test_a_new_run_dir_is_0700_whatever_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        run = prepare(tmp_path)
    finally:
        os.umask(old)
    assert mode(run.run_dir) == 0o700 and mode(rundir.logs_dir(run.run_dir)) == 0o700


def test_the_user_may_choose_another_mode_but_never_a_writable_one(tmp_path, monkeypatch):
    monkeypatch.setenv(private.MODE_ENV, "750")
    assert mode(prepare(tmp_path).run_dir) == 0o750
    for bad in ("777", "0640", "rwx", "1700"):
        monkeypatch.setenv(private.MODE_ENV, bad)
        with pytest.raises(RunError, match=f"CTC_TUI_RUN_DIR_MODE='{bad}' is not a run dir mode"):
            prepare(tmp_path, name=f"r{bad}")


def test_an_existing_run_dir_of_ones_own_is_narrowed_to_the_mode(tmp_path):
    run = prepare(tmp_path)
    (run.run_dir / rundir.EVENTS).write_text("")
    os.chmod(run.run_dir, 0o755)  # as runs were made before they were private
    os.chmod(rundir.logs_dir(run.run_dir), 0o755)
    service.prepare(ResumeRequest(run_dir=run.run_dir, check=False))
    assert mode(run.run_dir) == 0o700 and mode(rundir.logs_dir(run.run_dir)) == 0o700


def test_an_existing_dir_of_another_user_is_refused(tmp_path):
    theirs = tmp_path / "run"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(RunError, match="belongs to uid 4242, not to you"):
        prepare(tmp_path, "training.overwrite_output_dir=true")
    assert list(theirs.iterdir()) == []


def test_a_group_or_world_writable_run_dir_is_refused_on_start_and_resume(tmp_path):
    run = prepare(tmp_path)
    (run.run_dir / rundir.EVENTS).write_text("")
    os.chmod(run.run_dir, 0o777)
    with pytest.raises(RunError, match=r"can be written by group and others \(mode 777\): .*chmod go-w"):
        service.prepare(ResumeRequest(run_dir=run.run_dir, check=False))
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o770)
    with pytest.raises(RunError, match="can be written by its group"):
        prepare(tmp_path, name="open")
    os.chmod(run.run_dir, 0o700)
    assert service.prepare(ResumeRequest(run_dir=run.run_dir, check=False)).resumed


def test_a_resume_of_someone_elses_run_dir_is_refused(tmp_path):
    run = prepare(tmp_path)
    os.chown(run.run_dir, OTHER_UID, OTHER_UID)
    with pytest.raises(RunError, match="not to you"):
        service.prepare(ResumeRequest(run_dir=run.run_dir, check=False))


# -- the Hub token never written out ----------------------------------------------------------------


def all_text(folder: Path) -> str:
    return "".join(
        p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    )


def test_model_token_moves_to_a_0600_file_and_nowhere_else(tmp_path, token_preset):
    warnings = []
    run = service.prepare(
        StartRequest(preset=str(token_preset), output_dir=str(tmp_path / "run"), check=False), warnings.append
    )
    token_file = run.run_dir / rundir.HF_TOKEN_FILE
    assert token_file.read_text() == SECRET and mode(token_file) == 0o600
    assert SECRET not in all_text(run.run_dir).replace(token_file.read_text(), "", 1)
    assert SECRET not in " ".join(run.command) and SECRET not in str(dict(run.env))
    assert any("hf-token (mode 0600), not in preset.yaml" in w for w in warnings)
    assert load_preset(run.run_dir / "preset.yaml").model.token is None
    assert SECRET not in repr(run.preset)


def test_hf_token_is_stored_for_hostfile_runs_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert not (prepare(tmp_path).run_dir / rundir.HF_TOKEN_FILE).exists()
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost slots=1\n")
    run = prepare(tmp_path, "launch.launcher=deepspeed", f"launch.hostfile={hostfile}", name="multi")
    assert private.read_secret(run.run_dir / rundir.HF_TOKEN_FILE) == SECRET
    assert SECRET not in (run.run_dir / rundir.COMMAND).read_text() and SECRET not in " ".join(run.command)


def test_show_command_prints_a_placeholder_instead_of_the_token(token_preset, capsys):
    for style in ("runner", "gaudi_spawn"):
        assert cli.main(["show-command", str(token_preset), "--style", style]) == 0
        out = capsys.readouterr().out
        assert SECRET not in out and "--token '<from HF_TOKEN>'" in out
    path = token_preset.with_name("placeholder.yaml")
    path.write_text("model:\n  token: <from HF_TOKEN>\n")
    assert load_preset(path).model.token is None  # the placeholder given back means "none here"


def test_import_command_redacts_its_header_and_keeps_no_token(tmp_path, capsys):
    command = (
        f"HF_TOKEN={SECRET} python run_speech_recognition_ctc.py --model_name_or_path m "
        f"--dataset_name librispeech_asr --output_dir ./o --token '{SECRET}' --pad_token '[PAD]' --do_train"
    )
    out_file = tmp_path / "imported.yaml"
    assert cli.main(["import-command", command, "-o", str(out_file)]) == 0
    captured = capsys.readouterr()
    text = out_file.read_text()
    assert SECRET not in text + captured.out + captured.err
    assert "HF_TOKEN=<redacted>" in text and "--token <redacted>" in text and "--pad_token '[PAD]'" in text
    assert "export HF_TOKEN" in captured.err


@pytest.mark.parametrize(
    "command, expected",
    [
        ("--hub_token=abc --x 1", "--hub_token=<redacted> --x 1"),
        ('--use_auth_token "a b" --y', "--use_auth_token <redacted> --y"),
        ("HUGGING_FACE_HUB_TOKEN=s python", "HUGGING_FACE_HUB_TOKEN=<redacted> python"),
        ("--unk_token [UNK] --word_delimiter_token |", "--unk_token [UNK] --word_delimiter_token |"),
        ("--tokenizer_name_or_path t", "--tokenizer_name_or_path t"),
    ],
)
def test_redaction(command, expected):
    assert private.redact(command) == expected


def test_exports_never_carry_the_token(tmp_path, token_preset, capsys):
    out = tmp_path / "job.sbatch"
    assert cli.main(["export", str(token_preset), "--slurm", "--nodes", "1", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err + out.read_text() and "model:" in out.read_text()


def test_the_exported_slurm_job_makes_a_private_run_dir(tmp_path):
    from ctc_tui.schedulers import slurm

    script = slurm.export_script(load_preset(CPU), slurm.SlurmOptions(nodes=1), preset_name="demo")
    assert 'mkdir -p -m "${CTC_TUI_RUN_DIR_MODE:-700}" "$run_dir" "$run_dir/logs"' in script


# -- DeepSpeed's remote shell -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["$(touch /tmp/x)", "a`id`", 'a"b', "a\\b", "two\nlines", "${HOME}"])
def test_a_deepspeed_env_value_the_remote_shell_would_read_is_refused(value):
    with pytest.raises(ValueError, match="CTC_TUI_RUN_DIR=.* choose a training.output_dir without them"):
        deepspeed_env_text({"CTC_TUI_RUN_DIR": value}, ["CTC_TUI_RUN_DIR"])
    with pytest.raises(ValueError, match="MY_VAR=.* remove them from MY_VAR in your own .deepspeed_env"):
        deepspeed_env_text({}, [], previous=f"MY_VAR={value.splitlines()[0]}`\n")


@pytest.mark.parametrize(
    ("launcher", "nodes"), [("deepspeed", 2), ("deepspeed", 1), ("mpi", 1), ("torchrun", 1), ("single", 1)]
)
def test_an_output_dir_with_a_command_is_refused_the_same_on_one_node_and_many(tmp_path, launcher, nodes):
    """Issue 17 item 8: a single-node DeepSpeed run accepted ``$(...)`` in its run dir while a multi-node
    one refused it; now every launcher on any node count refuses it, before anything is written."""
    overrides = [f"launch.launcher={launcher}", "launch.world_size=1"]
    if nodes > 1:
        hostfile = tmp_path / "hosts"
        hostfile.write_text("node-a slots=1\nnode-b slots=1\n")
        overrides.append(f"launch.hostfile={hostfile}")
    evil = tmp_path / "out$(touch PWNED)"
    with pytest.raises(RunError) as refused:
        service.prepare(
            StartRequest(preset="demo-cpu", overrides=tuple(overrides), output_dir=str(evil), check=False)
        )
    message = str(refused.value)
    assert message.startswith("this run cannot start safely; nothing was started:\n  training.output_dir: ")
    assert "holds '$'" in message and "on one node as on many" in message
    assert message.count("training.output_dir") == 1  # named once, also on many nodes
    assert not evil.exists()


def test_deepspeed_checks_name_an_unsafe_forwarded_variable(tmp_path):
    from ctc_tui.launchers import get

    hostfile = tmp_path / "hosts"
    hostfile.write_text("node-a slots=1\nnode-b slots=1\n")
    preset = load_preset(CPU, ["launch.launcher=deepspeed", f"launch.hostfile={hostfile}"])
    refused = get("deepspeed").refusals(preset, {"PYTHONPATH": "/x:$(id)"})
    assert [f.key for f in refused] == ["launch.launcher"] and "PYTHONPATH=" in refused[0].message
    assert get("deepspeed").refusals(preset, {"PYTHONPATH": "/x"}) == []
    assert get("mpi").refusals(preset, {"PYTHONPATH": "/x:$(id)"}) == []


def test_a_line_of_the_users_own_deepspeed_env_is_refused_before_the_run(tmp_path, monkeypatch):
    from ctc_tui.launchers import get

    hostfile = tmp_path / "hosts"
    hostfile.write_text("node-a slots=1\nnode-b slots=1\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".deepspeed_env").write_text("NCCL_DEBUG=INFO\nMY_PATH=$PATH:/opt\n")
    preset = load_preset(CPU, ["launch.launcher=deepspeed", f"launch.hostfile={hostfile}"])
    refused = get("deepspeed").refusals(preset, {})
    assert len(refused) == 1 and "MY_PATH=" in refused[0].message
    assert "remove them from MY_PATH in your own .deepspeed_env" in refused[0].message


def test_ctc_tui_check_names_the_output_dir_for_every_launcher(tmp_path):
    from ctc_tui.check import check_launcher

    preset = load_preset(CPU, ["launch.launcher=mpi", f"training.output_dir={tmp_path}/r`id`"])
    found = [f for f in check_launcher(preset, which=lambda name: None) if f.key == "training.output_dir"]
    assert len(found) == 1 and found[0].level == "error" and "holds '`'" in found[0].message
