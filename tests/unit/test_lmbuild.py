"""``ctc-tui lm build`` on the embedded demo corpus: the transcripts normalised as the labels are, the
three files of RUN_DIR/lm/, --text files, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from ctc_tui.cli import main
from ctc_tui.core import ngram
from ctc_tui.core.textnorm import make_normaliser
from ctc_tui.sources import source
from tests.conftest import DEMO_DATA, REPO


def demo_run_dir(tmp_path: Path, extra: str = "") -> Path:
    """A run dir as far as lm build needs one: the demo preset with its data folder made absolute."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text = (REPO / "presets" / "demo-cpu.yaml").read_text()
    text = text.replace("dataset_dir: data/demo-speech", f"dataset_dir: {DEMO_DATA}") + extra
    (run_dir / "preset.yaml").write_text(text)
    return run_dir


def test_lm_build_writes_the_arpa_the_unigrams_and_what_went_in(tmp_path, capsys):
    run_dir = demo_run_dir(tmp_path)
    assert main(["lm", "build", str(run_dir)]) == 0
    assert "lm.arpa: order 3, 800 sentences" in capsys.readouterr().out
    lm_dir = run_dir / "lm"
    arpa = ngram.read_arpa((lm_dir / "lm.arpa").read_text().splitlines())
    info = json.loads((lm_dir / "lm.json").read_text())
    unigrams = (lm_dir / "unigrams.txt").read_text().split()
    # the words are the labels' words: punctuation of chars_to_ignore gone, lower case, ' and - kept
    labels = source("audiofolder").read_split(DEMO_DATA, "train").text
    normalise = make_normaliser(',?.!;:"', True)
    words = {w for t in labels for w in normalise(t).split()}
    assert set(unigrams) == words and {"o'clock", "twenty-one", "three"} <= words
    assert arpa.words == words | {"<s>", "</s>", "<unk>"} and arpa.order == 3
    assert info["order"] == 3 and info["sentences"] == 800 and info["vocabulary"] == len(words)
    assert info["sources"][0] == {**info["sources"][0], "kind": "transcripts", "split": "train", "clips": 800}
    assert info["ngrams"]["1"] == len(words) + 3
    norm = {"chars_to_ignore": list(',?.!;:"'), "lower": True, "word_delimiter": "|"}
    assert info["normalisation"] == norm
    # the eval split's sentences are not in it (tuning and scoring stay honest)
    assert "eval" not in json.dumps(info["sources"])
    # a likelier continuation is a seen one: "o'clock" follows a digit, never <s>
    assert arpa.score(("<s>", "three"), "o'clock") > arpa.score(("<s>",), "o'clock")


def test_text_files_are_added_and_normalised_the_same_way(tmp_path):
    run_dir = demo_run_dir(tmp_path)
    extra = tmp_path / "extra.txt"
    extra.write_text("Eleven, TWELVE!\n\nthirteen o'clock\n")
    assert main(["lm", "build", str(run_dir), "--text", str(extra), "--order", "2"]) == 0
    info = json.loads((run_dir / "lm" / "lm.json").read_text())
    assert info["order"] == 2 and info["sentences"] == 802
    assert info["sources"][1]["kind"] == "text" and info["sources"][1]["sentences"] == 2
    assert {"eleven", "twelve", "thirteen"} <= set((run_dir / "lm" / "unigrams.txt").read_text().split())
    assert main(["lm", "build", str(run_dir), "--text", str(extra), "--no-transcripts"]) == 0
    assert json.loads((run_dir / "lm" / "lm.json").read_text())["sentences"] == 2


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["lm", "build", str(tmp_path)]) == 2
    assert "is not a run dir (no preset.yaml)" in capsys.readouterr().err
    run_dir = demo_run_dir(tmp_path)
    assert main(["lm", "build", str(run_dir), "--text", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read --text" in capsys.readouterr().err
    assert main(["lm", "build", str(run_dir), "--order", "0"]) == 2
    assert "--order 0" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text(",,,\n")
    assert main(["lm", "build", str(run_dir), "--text", str(empty), "--no-transcripts"]) == 2
    assert "no text to build a language model from" in capsys.readouterr().err
    assert not (run_dir / "lm").exists()


def test_hub_transcripts_are_read_by_the_runners_reader_from_the_local_cache(tmp_path):
    """The child ``lm build`` runs for hub data (ctc_tui.runner.transcripts), here in-process: the text
    column of the split as the runner's hub reader loads it, offline (conftest sets HF_DATASETS_OFFLINE)."""
    import yaml

    from ctc_tui.runner.transcripts import split_texts
    from tests.conftest import preset_dict
    from tests.unit.test_data import _hub_repo

    repo = _hub_repo(tmp_path)
    preset = preset_dict(tmp_path)
    preset["data"] = {"source": "hub", "dataset_name": str(repo), "train_split_name": "train"}
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset))
    assert split_texts(path, "train") == [f"Word, {i}" for i in range(5)]
