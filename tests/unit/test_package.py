"""``ctc-tui package``'s parts, each alone: checkpoint averaging, which weights and which OUT folder it
accepts, the model card and the Hub token's file rules (the upload itself, over HTTP to a stand-in of
the Hub: tests/integration/test_package.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from ctc_tui.core import commit_marker
from ctc_tui.core.trust import Untrusted
from ctc_tui.runner import averaging, hubpush, modelcard
from ctc_tui.runner import package as pkg


def checkpoint(run_dir: Path, step: int, weight: float, committed: bool = True) -> Path:
    """A checkpoint-N whose weights are all ``weight`` (an int tensor and a buffer ``step`` too)."""
    folder = run_dir / f"checkpoint-{step}"
    commit_marker.begin(folder, step)
    state = {
        "layer.weight": torch.full((2, 3), weight),
        "layer.bias": torch.full((3,), weight, dtype=torch.float16),
        "counts": torch.tensor([step, step], dtype=torch.int64),
        "norm.running_mean": torch.full((3,), weight),
    }
    save_file(state, str(folder / "model.safetensors"), {"format": "pt"})
    (folder / "config.json").write_text("{}")
    if committed:
        commit_marker.commit(folder, step, 1)
    return folder


def test_average_means_float_tensors_and_takes_the_rest_from_the_newest(tmp_path):
    for step, weight in ((10, 1.0), (20, 2.0), (30, 6.0)):
        checkpoint(tmp_path, step, weight)
    chosen = averaging.last_complete(tmp_path, 2)
    assert [c.name for c in chosen] == ["checkpoint-20", "checkpoint-30"]
    state = averaging.average_checkpoints(chosen, buffers={"norm.running_mean"})
    assert torch.equal(state["layer.weight"], torch.full((2, 3), 4.0))
    assert state["layer.bias"].dtype == torch.float16 and torch.equal(
        state["layer.bias"], torch.full((3,), 4.0).half()
    )
    assert torch.equal(state["counts"], torch.tensor([30, 30]))  # integers: the newest's
    assert torch.equal(state["norm.running_mean"], torch.full((3,), 6.0))  # a buffer: the newest's
    three = averaging.average_checkpoints(averaging.last_complete(tmp_path, 3), set())
    assert torch.allclose(three["layer.weight"], torch.full((2, 3), 3.0))


def test_average_counts_only_committed_checkpoints_and_names_what_exists(tmp_path):
    checkpoint(tmp_path, 10, 1.0)
    checkpoint(tmp_path, 20, 2.0, committed=False)  # a save cut short: intent, no marker
    with pytest.raises(averaging.AveragingError) as err:
        averaging.last_complete(tmp_path, 2)
    assert "has 1 (checkpoint-10, checkpoint-20 (incomplete))" in str(err.value)
    with pytest.raises(averaging.AveragingError, match="2 or more"):
        averaging.last_complete(tmp_path, 0)


def test_average_refuses_checkpoints_of_different_models(tmp_path):
    checkpoint(tmp_path, 10, 1.0)
    other = checkpoint(tmp_path, 20, 2.0)
    chosen = averaging.last_complete(tmp_path, 2)
    save_file({"layer.weight": torch.zeros(4, 3)}, str(other / "model.safetensors"))
    with pytest.raises(averaging.AveragingError, match="other weights"):
        averaging.average_checkpoints(chosen, set())
    assert averaging.last_complete(tmp_path, 1)[0].name == "checkpoint-10"  # the marker saw the change
    with pytest.raises(averaging.AveragingError, match="differ in layer.weight"):
        averaging.average([{"layer.weight": torch.zeros(2)}, {"layer.weight": torch.zeros(3)}])


def test_weights_refuse_an_unfinished_run_naming_its_checkpoints(tmp_path):
    checkpoint(tmp_path, 10, 1.0)
    with pytest.raises(
        pkg.PackageError, match=r"no final model .*checkpoints: checkpoint-10.*--checkpoint N"
    ):
        pkg.choose_weights(tmp_path, None, None)
    with pytest.raises(pkg.PackageError, match="has no checkpoint-99; checkpoints: checkpoint-10"):
        pkg.choose_weights(tmp_path, 99, None)
    assert pkg.choose_weights(tmp_path, 10, None).origin == "checkpoint-10"
    (tmp_path / "checkpoint-10" / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(pkg.PackageError, match="checkpoint-10 is incomplete"):
        pkg.choose_weights(tmp_path, 10, None)


def test_out_must_be_new_or_empty_unless_forced(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pkg.check_out(tmp_path / "new", run_dir, force=False)
    (tmp_path / "empty").mkdir()
    pkg.check_out(tmp_path / "empty", run_dir, force=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(pkg.PackageError, match="exists and is not empty .*--force"):
        pkg.check_out(mine, run_dir, force=False)
    pkg.check_out(mine, run_dir, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(pkg.PackageError, match="not a folder"):
        pkg.check_out(tmp_path / "file", run_dir, force=True)
    for holder in (run_dir, tmp_path):  # never the run dir, nor a folder above it, even with --force
        with pytest.raises(pkg.PackageError, match="holds the run dir"):
            pkg.check_out(holder, run_dir, force=True)


def test_built_aside_replaces_out_only_once_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), pkg.built_aside(out) as work:
        (work / "half.txt").write_text("half")
        raise RuntimeError("failed midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "old.txt").is_file()
    with pkg.built_aside(out) as work:
        (work / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left aside


def facts(**changes) -> modelcard.CardFacts:
    base = dict(
        name="demo-asr",
        architecture="Wav2Vec2ForCTC",
        origin="the average of the last 2 checkpoints (checkpoint-300, checkpoint-400)",
        preset_yaml="model:\n  architecture: wav2vec2-tiny\n",
        data=modelcard.DataFacts("audiofolder", "data/demo-speech", "train", 800, 0.71),
        results=[
            {
                "split": "eval",
                "clips": 100,
                "hours": 0.09,
                "wer": 0.1234,
                "cer": 0.05,
                "wer_lm": 0.1,
                "cer_lm": 0.04,
                "alpha": 0.5,
                "beta": 1.0,
                "model": "final",
            },
            {"split": "test", "clips": 50, "hours": 0.04, "wer": 0.2, "cer": 0.1, "model": "final"},
        ],
        commands=[
            "ctc-tui run ctc-tui-preset.yaml --output-dir runs/reproduce",
            "ctc-tui package runs/reproduce demo-asr --average 2",
        ],
        versions={
            "torch": {"trained": "2.13.0", "packaged": "2.13.0"},
            "optimum-habana": {"trained": None, "packaged": None},
        },
        language="en",
        lm={
            "order": 3,
            "vocabulary": 40,
            "alpha": 0.5,
            "beta": 1.0,
            "tuned_on": "eval",
            "model": "the run's final model",
        },
    )
    base.update(changes)
    return modelcard.CardFacts(**base)


def test_model_card_front_matter_is_hub_metadata_with_the_wers():
    text = modelcard.render(facts())
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["language"] == ["en"] and meta["license"] == "other" and "ctc-tui" in meta["tags"]
    assert meta["pipeline_tag"] == "automatic-speech-recognition" and "wer" in meta["metrics"]
    (index,) = meta["model-index"]
    eval_metrics = {m["name"]: m["value"] for m in index["results"][0]["metrics"]}
    assert eval_metrics == {
        "WER (greedy)": 12.34,
        "CER (greedy)": 5.0,
        "WER (with LM)": 10.0,
        "CER (with LM)": 4.0,
    }
    assert index["results"][1]["dataset"]["split"] == "test" and len(index["results"][1]["metrics"]) == 2


def test_model_card_body_says_what_reproduces_it():
    text = modelcard.render(facts())
    assert "| eval | 100 | 0.090 | 12.34 | 5.00 | 10.00 | 4.00 | 0.5 | 1 |" in text
    assert "| test | 50 | 0.040 | 20.00 | 10.00 |  |  |  |  |" in text
    assert "| audiofolder | `data/demo-speech` | train | 800 | 0.710 |" in text
    assert "ctc-tui package runs/reproduce demo-asr --average 2" in text
    assert "```yaml\nmodel:\n  architecture: wav2vec2-tiny\n```" in text
    assert "| torch | 2.13.0 | 2.13.0 |" in text and "optimum-habana" not in text.split("## Software")[1]
    assert "alpha 0.5, beta 1" in text and "checkpoint-300, checkpoint-400" in text
    bare = modelcard.render(facts(results=[], lm=None, language=None))
    assert "ctc-tui eval RUN_DIR" in bare and "No language model" in bare
    assert yaml.safe_load(bare.split("---\n")[1])["language"] == ["und"]


def test_the_hub_token_comes_from_the_runs_private_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    token_file = tmp_path / "hf-token"
    token_file.write_text("hf_from_file\n")
    token_file.chmod(0o600)
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert hubpush.token_for(tmp_path) == "hf_from_file"  # the run's file first
    token_file.chmod(0o644)  # readable by others: refused, never used
    with pytest.raises(Untrusted, match="hf-token"):
        hubpush.token_for(tmp_path)
    token_file.unlink()
    assert hubpush.token_for(tmp_path) == "hf_from_env"


def test_no_token_anywhere_names_the_file_to_write(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no huggingface-cli login here
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(hubpush.PushError, match=r"no Hub token: write it to .*hf-token \(mode 0600"):
        hubpush.token_for(tmp_path)


@pytest.mark.parametrize("repo_id", ["me/model", "model", "org-1/wav2vec2.demo_v2"])
def test_repo_ids_the_hub_takes(repo_id):
    hubpush.check_repo_id(repo_id)


@pytest.mark.parametrize("repo_id", ["a/b/c", "-x/model", "me/../x", "me/model.git", "", "me/ model"])
def test_repo_ids_refused(repo_id):
    with pytest.raises(hubpush.PushError, match="not a Hub repo id"):
        hubpush.check_repo_id(repo_id)


def test_the_reproduce_commands_follow_the_options(tmp_path):
    from ctc_tui.runner.lmfiles import TunedLm
    from ctc_tui.runner.packagefacts import commands

    args = argparse.Namespace(out=Path("/x/demo-asr"), checkpoint=None, average=3, no_lm=False, language="en")
    lm = TunedLm(
        Path("a"),
        Path("b"),
        None,
        {},
        {"order": 4, "sources": [{"kind": "transcripts"}, {"kind": "text", "path": "/t/more.txt"}]},
    )
    assert commands(tmp_path, None, lm, args) == [
        "ctc-tui run ctc-tui-preset.yaml --output-dir runs/reproduce",
        "ctc-tui lm build runs/reproduce --order 4 --text /t/more.txt",
        "ctc-tui eval runs/reproduce --lm",
        "ctc-tui package runs/reproduce demo-asr --average 3 --language en",
    ]
