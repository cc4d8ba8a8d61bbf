"""A real (tiny) demo run, then ``ctc-tui lm build`` and ``ctc-tui eval --lm`` through the real programs."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
FAST = [
    "training.max_steps=12",
    "training.save_steps=6",
    "training.save_total_limit=5",
    "data.max_train_samples=96",
    "data.max_eval_samples=12",
    "training.per_device_train_batch_size=8",
]


def test_lm_build_then_eval_with_the_lm(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    nothing = run_cli("eval", str(run_dir), timeout=120)
    assert nothing.returncode == 2 and "is not a run dir (no preset.yaml)" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    out = run_cli("run", "demo-cpu", *FAST, "--output-dir", str(run_dir), timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr

    # eval --lm before lm build: one line naming the fix
    early = run_cli("eval", str(run_dir), "--lm", timeout=300)
    assert early.returncode == 2 and "ctc-tui lm build" in early.stderr and "Traceback" not in early.stderr

    built = run_cli("lm", "build", str(run_dir), timeout=60)
    assert built.returncode == 0, built.stderr
    info = json.loads((run_dir / "lm" / "lm.json").read_text())
    assert info["sources"][0]["clips"] == 96 and info["order"] == 3  # data.max_train_samples, as trained

    first = run_cli("eval", str(run_dir), "--lm", "--json", timeout=400)
    assert first.returncode == 0, first.stderr
    (result,) = [json.loads(line) for line in first.stdout.splitlines()]
    assert result["split"] == "eval" and result["clips"] == 12
    assert {"wer", "cer", "wer_lm", "cer_lm", "alpha", "beta"} <= result.keys()
    # the greedy WER is the run's own final eval WER (same clips, same model, same normalisation)
    trained = json.loads((run_dir / "all_results.json").read_text())
    assert result["wer"] == pytest.approx(trained["eval_wer"], abs=1e-6)
    assert json.loads((run_dir / "eval" / "eval.json").read_text()) == result
    weights = json.loads((run_dir / "lm" / "weights.json").read_text())
    assert weights["tuned_on"] == "eval" and (weights["alpha"], weights["beta"]) == (
        result["alpha"],
        result["beta"],
    )
    assert weights["arpa_sha256"] == info["arpa_sha256"] and len(weights["grid"]) > 10
    # tuning never does worse than no LM on the split it tunes on (alpha 0 is in the grid)
    assert min(t["wer"] for t in weights["grid"]) == result["wer_lm"]

    # a second eval of the same model reuses the stored weights (no tuning), as a table
    stamp = (run_dir / "lm" / "weights.json").stat().st_mtime_ns
    table = run_cli("eval", str(run_dir), "--lm", timeout=400)
    assert table.returncode == 0, table.stderr
    assert "tuning" not in table.stderr and (run_dir / "lm" / "weights.json").stat().st_mtime_ns == stamp
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["split", "clips", "hours", "WER", "CER", "WER+LM", "CER+LM", "alpha", "beta"]
    assert row.split()[:2] == ["eval", "12"]

    # another model (a checkpoint) is tuned for again, on the eval split
    ckpt = run_cli("eval", str(run_dir), "--lm", "--checkpoint", "6", "--json", timeout=400)
    assert ckpt.returncode == 0, ckpt.stderr
    assert "tuning on eval" in ckpt.stderr
    assert json.loads((run_dir / "lm" / "weights.json").read_text())["model"] == "checkpoint-6"
    assert json.loads((run_dir / "eval" / "eval.json").read_text())["model"] == "checkpoint-6"

    # a split the data does not have: one line naming it
    absent = run_cli("eval", str(run_dir), "--split", "nosuch", timeout=300)
    assert absent.returncode == 2 and "split 'nosuch'" in absent.stderr and "Traceback" not in absent.stderr

    missing = run_cli("eval", str(run_dir), "--checkpoint", "99", timeout=120)
    assert missing.returncode == 2 and "checkpoint-6" in missing.stderr and "Traceback" not in missing.stderr

    # a checkpoint cut short (its weights truncated) is refused, not scored
    torn = run_dir / "checkpoint-9"
    shutil.copytree(run_dir / "checkpoint-6", torn)
    weights_file = torn / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    cut = run_cli("eval", str(run_dir), "--checkpoint", "9", timeout=120)
    assert cut.returncode == 2 and "checkpoint-9 is incomplete" in cut.stderr
    assert "Traceback" not in cut.stderr


def test_lm_build_reads_hub_transcripts_from_the_local_cache(tmp_path):
    """Hub data (a dataset loaded by the datasets library, offline): lm build reads the training split's
    transcripts through the runner's reader in a child process, normalised as the labels are."""
    import yaml

    from tests.conftest import preset_dict
    from tests.unit.test_data import _hub_repo

    repo = _hub_repo(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    preset = preset_dict(tmp_path)
    preset["data"] = {"source": "hub", "dataset_name": str(repo), "chars_to_ignore": [","]}
    preset["data"].update(train_split_name="train", eval_split_name="validation")
    (run_dir / "preset.yaml").write_text(yaml.safe_dump(preset))
    built = run_cli("lm", "build", str(run_dir), timeout=120)
    assert built.returncode == 0, built.stderr
    info = json.loads((run_dir / "lm" / "lm.json").read_text())
    assert info["sources"][0] == {**info["sources"][0], "kind": "transcripts", "source": "hub", "clips": 5}
    assert (run_dir / "lm" / "unigrams.txt").read_text().split() == ["0", "1", "2", "3", "4", "word"]
    # a split the dataset lacks: one line, naming it and the --text way round
    preset["data"]["train_split_name"] = "nosuch"
    (run_dir / "preset.yaml").write_text(yaml.safe_dump(preset))
    absent = run_cli("lm", "build", str(run_dir), timeout=120)
    assert absent.returncode == 2 and "cannot read the training split 'nosuch'" in absent.stderr
    assert "--no-transcripts" in absent.stderr and "Traceback" not in absent.stderr
