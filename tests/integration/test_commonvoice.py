"""A Common Voice release in German, as Mozilla lays it out (MP3 at 48 kHz, TSVs with umlauts, ß and
quotation marks, two bad rows), chosen in the wizard (source and locale), checked (the data summary, the
skipped rows with their lines) and trained from the saved preset with ``ctc-tui run`` to a real WER on
the CPU, the skipped rows in the run's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Button, Input, Select

from tests.conftest import REPO, run_cli
from tests.integration.test_tui import DEMO, next_step, plain, settle, type_into, wizard

pytestmark = pytest.mark.slow
FAST = [
    "training.max_steps=12",
    "training.logging_steps=4",
    "training.eval_strategy=no",
    "training.save_strategy=no",
    "training.per_device_train_batch_size=8",
]


def make_release(root: Path) -> None:
    """German (``de``: 48 train, 8 dev clips) and a little French (``fr``) in one release folder."""
    for locale, counts in (("de", ("48", "8")), ("fr", ("2", "1"))):
        made = subprocess.run(
            [sys.executable, "-m", "ctc_tui.runner.make_cv_corpus", "--out", str(root), "--locale", locale]
            + ["--train", counts[0], "--dev", counts[1], "--test", "1", "--jobs", "2"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert made.returncode == 0, made.stderr
    with (root / "de" / "train.tsv").open("a", encoding="utf-8") as tsv:  # two rows a run must skip
        tsv.write("x\tmissing.mp3\ty\tweg\t\t2\t0\t\t\t\t\tde\t\n")
        tsv.write("x\tcommon_voice_de_1000.mp3\ty\t \t\t2\t0\t\t\t\t\tde\t\n")


async def choose_common_voice(release: Path, saved: Path) -> None:
    """The wizard: source commonvoice, the release folder, the German locale, splits train and dev,
    the quotation marks removed; saved at the review step."""
    app = wizard(saved, DEMO)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await next_step(pilot, "DataStep")
        await settle(pilot)
        app.screen.query_one("#f-data--source", Select).value = "commonvoice"
        await type_into(pilot, "#f-data--dataset_dir", str(release))
        await type_into(pilot, "#f-data--dataset_config_name", "")
        await type_into(pilot, "#f-data--eval_split_name", "dev")
        app.screen.query_one("#check", Button).press()  # the "Check data" button
        await settle(pilot)
        shown = plain(pilot, "#scan")
        assert "locales de, fr" in shown and "set data.dataset_config_name to one of de, fr" in shown
        await type_into(pilot, "#f-data--dataset_config_name", "de")
        app.screen.query_one("#check", Button).press()  # the "Check data" button
        await settle(pilot)
        shown = plain(pilot, "#scan")
        assert [(s.split, s.clips) for s in app.scan.splits] == [("train", 48), ("dev", 8)]
        assert "48000 Hz" in shown and "columns client_id  path  sentence_id  sentence" in shown
        assert {"ä", "ö", "ü", "ß"} & set(app.scan.vocab)
        await next_step(pilot, "TextStep")
        chars = app.screen.query_one("#f-data--chars_to_ignore", Input)
        chars.value = ',?.!;:"„“«»'
        await pilot.pause()
        assert "„" not in app.screen.vocab and "ß" in app.screen.vocab
        for step in ("CardsStep", "PrecisionStep", "TrainingStep", "ReviewStep"):
            await next_step(pilot, step)
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.return_value and str(saved) in app.return_value


async def test_a_german_common_voice_release_from_the_wizard_trains_to_a_wer(tmp_path):
    release = tmp_path / "cv-corpus-de"
    make_release(release)
    saved = tmp_path / "cv-de.yaml"
    await choose_common_voice(release, saved)
    text = saved.read_text()
    assert "source: commonvoice" in text and "dataset_config_name: de" in text

    checked = run_cli("check", str(saved), "--output-dir", str(tmp_path / "run"), timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "  locales: de, fr" in checked.stdout and "columns: client_id path sentence_id" in checked.stdout
    assert "train  48 clips" in checked.stdout and "48000 Hz" in checked.stdout
    tsv = release / "de" / "train.tsv"
    assert "warning: data.train_split_name: train.tsv: 2 of 50 row(s) skipped: " in checked.stdout
    assert f"{tsv}:50: clip missing.mp3 is not in" in checked.stdout
    assert f"{tsv}:51: empty sentence in 'sentence'" in checked.stdout

    run_dir = tmp_path / "run"
    out = run_cli("run", str(saved), *FAST, "--output-dir", str(run_dir), timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads((run_dir / "all_results.json").read_text())
    assert 0.0 <= results["eval_wer"] <= 1.5 and results["eval_samples"] == 8
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert {"ä", "ö", "ü", "ß"} <= set(vocab) and not {"„", "“", '"', "«"} & set(vocab)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "resampled from 48000 Hz" in logs and "train: train.tsv: 2 of 50 row(s) skipped" in logs
    print(f"eval WER {results['eval_wer']:.3f}, CER {results.get('eval_cer')}")
