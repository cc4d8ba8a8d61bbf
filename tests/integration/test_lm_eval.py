"""A real (tiny) demo run, trained once for the module, then ``ctc-tui lm build`` and ``ctc-tui eval --lm``
through the real programs, and the runs screen doing both with its job panel."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DEMO_DATA, run_cli

pytestmark = pytest.mark.slow
FAST = [
    "training.max_steps=12",
    "training.save_steps=6",
    "training.save_total_limit=5",
    "data.max_train_samples=96",
    "data.max_eval_samples=12",
    "training.per_device_train_batch_size=8",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny demo run (FAST), trained once: each test works on its own copy (``copy_run``)."""
    root = tmp_path_factory.mktemp("trained")
    env = {"CTC_TUI_CACHE": str(root / "cache"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = run_cli("run", "demo-cpu", *FAST, "--output-dir", str(root / "run"), env=env, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "run"


def copy_run(trained: Path, run_dir: Path) -> Path:
    shutil.copytree(trained, run_dir, ignore=shutil.ignore_patterns("*.sock"))
    return run_dir


def demo_manifest(path: Path, count: int = 3) -> Path:
    """A manifest of the demo's first eval clips: a split from a file, not from the preset."""
    rows = list(csv.DictReader((DEMO_DATA / "eval" / "metadata.csv").open()))[:count]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "text"])
        writer.writerows([(str(DEMO_DATA / "eval" / r["file_name"]), r["text"]) for r in rows])
    return path


def test_lm_build_then_eval_with_the_lm(tmp_path, demo_data, trained):
    nothing = run_cli("eval", str(tmp_path / "run"), timeout=120)
    assert nothing.returncode == 2 and "is not a run dir (no preset.yaml)" in nothing.stderr
    assert "Traceback" not in nothing.stderr
    run_dir = copy_run(trained, tmp_path / "run")

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
    # progress on stderr (not a terminal: a line each time a phase's percent grows), never on stdout
    lines = first.stderr.splitlines()
    for phase in ("scoring eval", "tuning on eval", "LM decoding eval"):
        assert any(line.startswith(f"{phase}: 0/") for line in lines), first.stderr
    assert any(line.startswith("scoring eval: 12/12  100%") for line in lines), first.stderr
    assert any(line.startswith("LM decoding eval: 12/12  100%") for line in lines), first.stderr
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

    # a second eval of the same model reuses the stored weights (no tuning), as a table; a manifest
    # file is a split too, its result named by its source and stem
    stamp = (run_dir / "lm" / "weights.json").stat().st_mtime_ns
    manifest = demo_manifest(tmp_path / "lists" / "dev.csv")
    table = run_cli("eval", str(run_dir), "--lm", "--split", "eval", "--split", str(manifest), timeout=400)
    assert table.returncode == 0, table.stderr
    assert "tuning" not in table.stderr and (run_dir / "lm" / "weights.json").stat().st_mtime_ns == stamp
    header, row, other = table.stdout.splitlines()[:3]
    assert header.split() == ["split", "clips", "hours", "WER", "CER", "WER+LM", "CER+LM", "alpha", "beta"]
    assert row.split()[:2] == ["eval", "12"] and other.split()[:2] == ["manifest:dev", "3"]
    from_file = json.loads((run_dir / "eval" / "manifest_dev.json").read_text())
    assert from_file["split"] == "manifest:dev" and from_file["path"] == str(manifest)
    assert from_file["alpha"] == result["alpha"]  # the weights tuned on the preset's eval split
    listed = run_cli("runs", str(tmp_path), env={"COLUMNS": "200"})
    assert f"eval {result['wer']:.3f} (LM" in listed.stdout and "manifest:dev" in listed.stdout, listed.stdout

    # a --split that names nothing known: one line, before any model is loaded
    unknown = run_cli("eval", str(run_dir), "--split", "s3:bucket/x", timeout=60)
    assert unknown.returncode == 2 and "'s3' is not a data source" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1

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


async def test_the_runs_screen_evaluates_a_finished_run_and_builds_its_lm(tmp_path, trained):
    """From the run list: e evaluates (ctc-tui eval in a child process, its progress in the job panel,
    the result then in the table), l builds the LM (the next e would add --lm), p asks where to package."""
    from textual.widgets import DataTable, Input

    from ctc_tui.runs import actions
    from ctc_tui.runs.discovery import summarise
    from ctc_tui.tui import make_app
    from ctc_tui.tui.widgets.jobpanel import JobPanel

    run_dir = copy_run(trained, tmp_path / "runs" / "tiny")
    app = make_app(runs_root=tmp_path / "runs")
    ended: list[JobPanel.Ended] = []

    def hook(message):
        if isinstance(message, JobPanel.Ended) and message not in ended:  # seen again as it bubbles up
            ended.append(message)

    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:

        async def finish(count: int) -> None:
            while len(ended) < count:
                await pilot.pause(0.2)
            await app.workers.wait_for_complete()
            await pilot.pause()

        await app.workers.wait_for_complete()
        table = app.screen.query_one("#runs-table", DataTable)
        table.focus()
        assert str(table.get_cell(str(run_dir), "eval WER (LM)")) == "-"
        panel = app.screen.query_one("#job", JobPanel)
        await pilot.press("e")
        assert panel.running and panel.display
        await finish(1)
        assert ended[0].code == 0 and panel.seen == ["scoring eval"]
        result = json.loads((run_dir / "eval" / "eval.json").read_text())
        assert "wer_lm" not in result  # no LM yet: greedy only
        assert str(table.get_cell(str(run_dir), "eval WER (LM)")) == f"eval {result['wer']:.3f}"

        await pilot.press("l")
        await finish(2)
        assert ended[1].code == 0 and (run_dir / "lm" / "lm.arpa").is_file()
        assert ended[1].last.startswith(str(run_dir / "lm" / "lm.arpa"))
        assert "--lm" in actions.command("eval", run_dir)  # the next e decodes with it too

        await pilot.press("p")
        await pilot.pause()
        asked = app.screen.query_one("#ask-path", Input)
        assert asked.value == str(tmp_path / "runs" / "tiny-model")
        await pilot.press("escape")  # nothing started
        await pilot.pause()
        assert not panel.running and len(ended) == 2
    assert actions.refusal("eval", summarise(run_dir)) is None
