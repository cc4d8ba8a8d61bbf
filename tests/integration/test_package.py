"""``ctc-tui package`` on a real (tiny) demo run, through the real programs: train, ``lm build``,
``eval --lm``, package with the LM and as the average of the last two checkpoints, push to a stand-in
of the Hub, then load both folders with plain ``transformers.pipeline`` in a child process
(package_check.py) and compare with ctc-tui's own decoding.

The Hub cannot be reached from here: tests/hub_standin.py is a local stand-in of the part of its HTTP
API that huggingface_hub's ``create_repo`` and ``upload_folder`` call (repo create, preupload, the NDJSON
commit with base64 contents), pointed at with ``HF_ENDPOINT``; it keeps what it received.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctc_tui.runner import hubpush
from tests.conftest import REPO, run_cli
from tests.hub_standin import HubStandIn
from tests.integration.test_lm_eval import FAST

pytestmark = pytest.mark.slow
CLIPS = 4


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def hub_env(url: str) -> dict:
    """What run_cli adds to this environment: the stand-in as the Hub, online, no token but the run's."""
    home = Path(os.environ.get("TMPDIR", "/tmp")) / "no-hf-login"
    return {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "", "HF_HOME": str(home)}


@pytest.mark.timeout(1200)  # ~1 min alone; its eight child programs each wait for cores on a busy machine
def test_package_loads_in_plain_transformers_and_pushes(tmp_path, demo_data):
    run_dir, out, avg = tmp_path / "run", tmp_path / "demo-asr", tmp_path / "demo-asr-avg"
    trained = run_cli("run", "demo-cpu", *FAST, "--output-dir", str(run_dir), timeout=400)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert run_cli("lm", "build", str(run_dir), timeout=60).returncode == 0

    # an LM whose alpha/beta were never tuned is not packaged as if they were
    untuned = run_cli("package", str(run_dir), str(out), timeout=300)
    assert untuned.returncode == 2 and f"ctc-tui eval {run_dir} --lm" in untuned.stderr and not out.exists()
    scored = run_cli("eval", str(run_dir), "--lm", "--json", timeout=400)
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout.splitlines()[0])

    made = run_cli("package", str(run_dir), str(out), "--language", "en", timeout=300)
    assert made.returncode == 0, made.stderr
    assert "Wav2Vec2ProcessorWithLM" in made.stdout and "Traceback" not in made.stderr
    names = set(files_of(out))
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer_config.json",
        "vocab.json",
    } <= names
    assert {"alphabet.json", "README.md", "ctc-tui-preset.yaml", "processor_config.json"} <= names
    assert {n for n in names if n.startswith("language_model/")} == {
        "language_model/lm.arpa",
        "language_model/unigrams.txt",
        "language_model/attrs.json",
    }
    assert files_of(out)["language_model/lm.arpa"] == (run_dir / "lm" / "lm.arpa").read_bytes()
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    wers = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert wers["WER (greedy)"] == round(100 * result["wer"], 2) and wers["WER (with LM)"] == round(
        100 * result["wer_lm"], 2
    )
    assert meta["language"] == ["en"] and "| audiofolder |" in card and "| train | 96 |" in card
    assert (
        "ctc-tui run ctc-tui-preset.yaml --output-dir runs/reproduce" in card and "| transformers |" in card
    )

    # never over what the user made
    again = run_cli("package", str(run_dir), str(out), timeout=300)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr and "--force" in again.stderr
    absent = run_cli("package", str(run_dir), str(tmp_path / "x"), "--checkpoint", "99", timeout=300)
    assert absent.returncode == 2 and "checkpoints: checkpoint-6, checkpoint-12" in absent.stderr

    # the average of the last two checkpoints, pushed to the stand-in with the run's token file
    token = "hf_test_" + os.urandom(8).hex()
    (run_dir / "hf-token").write_text(token + "\n")
    (run_dir / "hf-token").chmod(0o644)
    with HubStandIn() as hub:
        loose = run_cli(
            "package",
            str(run_dir),
            str(avg),
            "--average",
            "2",
            "--no-lm",
            "--push-to-hub",
            "me/demo-asr",
            env=hub_env(hub.url),
            timeout=300,
        )
        assert loose.returncode == 2 and "hf-token" in loose.stderr and not avg.exists()  # readable by others
        (run_dir / "hf-token").chmod(0o600)
        pushed = run_cli(
            "package",
            str(run_dir),
            str(avg),
            "--average",
            "2",
            "--no-lm",
            "--push-to-hub",
            "me/demo-asr",
            env=hub_env(hub.url),
            timeout=300,
        )
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed to me/demo-asr" in pushed.stdout and token not in pushed.stdout + pushed.stderr
    assert hub.state.files["me/demo-asr"] == files_of(avg) and "alphabet.json" not in files_of(avg)
    assert hub.state.unknown == [] and {r.authorization for r in hub.state.requests} == {f"Bearer {token}"}
    assert set(hub.state.cards) == {(avg / "README.md").read_text()}  # the card's metadata, validated
    assert (
        "average of the last 2 checkpoints (checkpoint-6, checkpoint-12)" in (avg / "README.md").read_text()
    )

    clips = sorted(str(p) for p in (demo_data / "eval").glob("*.flac"))[:CLIPS]
    check = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "integration" / "package_check.py"),
            str(run_dir),
            str(out),
            str(avg),
            *clips,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    seen = json.loads(check.stdout.splitlines()[-1])
    assert seen["types"] == ["ctc_with_lm", "ctc"]
    weights = json.loads((run_dir / "lm" / "weights.json").read_text())
    assert [seen["decoder"]["alpha"], seen["decoder"]["beta"]] == [weights["alpha"], weights["beta"]]
    for token_text, label in zip(seen["vocab"], seen["decoder"]["labels"]):
        assert label == {"[PAD]": "", "|": " ", "[UNK]": "⁇"}.get(token_text, token_text)
    for clip in seen["clips"]:
        assert clip["logits_diff"] < 1e-5 and clip["average_logits_diff"] < 1e-4  # the very weights
        assert clip["average_moved"] > 1e-3  # and the average is not just the last checkpoint
        assert clip["pipeline_average"] == clip["ctc_tui_average_greedy"]
        assert clip["greedy_of_packaged"].split() == clip["ctc_tui_greedy"].split()
        assert (
            clip["pipeline_lm"] == clip["decoder_on_ours"]
        )  # the pipeline decodes ctc-tui's logits with the LM


def test_push_uploads_every_file_with_the_token(tmp_path, monkeypatch):
    """Against the stand-in (tests/hub_standin.py), in this process: the library's own client code
    (create_repo, preupload, the NDJSON commit) talks real HTTP to it."""
    import huggingface_hub.constants

    folder = tmp_path / "out"
    (folder / "language_model").mkdir(parents=True)
    files = {
        "README.md": b"# card\n",
        "model.safetensors": os.urandom(50_000),
        "language_model/lm.arpa": b"\\data\\\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest sets it
    with HubStandIn() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        url = hubpush.push(folder, "me/demo", "hf_secret", True, "ctc-tui package run")
        again = hubpush.push(folder, "me/demo", "hf_secret", True, "again")  # the repo exists: fine
    assert url.startswith(f"{hub.url}/me/demo/commit/") and again != url
    assert hub.state.files["me/demo"] == files and hub.state.repos["me/demo"]["private"] is True
    assert hub.state.unknown == [] and {r.authorization for r in hub.state.requests} == {"Bearer hf_secret"}
    assert hub.state.commits[0]["value"]["summary"] == "ctc-tui package run"
    assert set(hub.state.cards) == {"# card\n"}  # the card went through validate-yaml


def test_a_card_the_hub_refuses_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("---\n- a list, not a mapping\n---\n")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubStandIn() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        with pytest.raises(
            hubpush.UploadFailed, match="upload to me/demo failed: Invalid metadata in README.md"
        ):
            hubpush.push(tmp_path / "out", "me/demo", "hf_secret", False, "m")
    assert hub.state.files["me/demo"] == {}


def test_a_failed_upload_keeps_the_folder_and_says_so(tmp_path, monkeypatch):
    import huggingface_hub.constants

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("x")
    with HubStandIn() as hub:
        url = hub.url
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)  # the stand-in is gone: refused
    with pytest.raises(hubpush.UploadFailed, match=r"upload to me/demo failed: .*the folder is kept in"):
        hubpush.push(tmp_path / "out", "me/demo", "hf_secret", False, "m")
