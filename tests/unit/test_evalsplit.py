"""``ctc-tui eval --split SPEC``: a preset split by name, a folder or manifest recognised by its layout,
SOURCE:ROOT[:SPLIT], and one-line errors for what is none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctc_tui.core.sources import DataError
from ctc_tui.sources import source
from ctc_tui.sources.evalsplit import PRESET, recognise, resolve
from tests.conftest import make_audiofolder, make_librispeech, write_audio


def test_a_bare_name_is_a_split_of_the_presets_data_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    (tmp_path / "test").mkdir()
    monkeypatch.chdir(tmp_path)
    spec = resolve("test")
    assert (spec.source, spec.split, spec.label, spec.path) == (PRESET, "test", "test", None)
    assert resolve("test.clean").file_name == "test.clean.json"
    assert resolve("train+dev").split == "train+dev"


def test_folders_are_recognised_by_their_layout_and_read_by_their_source(tmp_path):
    make_librispeech(tmp_path / "LibriSpeech", "test-other", rate=16000, speakers=1)
    make_audiofolder(tmp_path / "af", "clips", [("a.wav", "HELLO"), ("b.wav", "WORLD")])
    pairs = tmp_path / "pairs"
    write_audio(pairs / "x.flac", 0.3, 16000)
    (pairs / "x.txt").write_text("SOME TEXT\n")
    manifest = tmp_path / "lists" / "dev.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"audio,text\n{pairs / 'x.flac'},SOME TEXT\n")

    libri = resolve(str(tmp_path / "LibriSpeech" / "test-other"))
    assert (libri.source, libri.label, libri.file_name) == (
        "librispeech",
        "librispeech:test-other",
        "librispeech_test-other.json",
    )
    assert libri.path == str(tmp_path / "LibriSpeech" / "test-other")
    assert resolve(str(tmp_path / "af" / "clips")).label == "audiofolder:clips"
    assert resolve(str(pairs) + "/").source == "audiofolder"
    dev = resolve(str(manifest))
    assert (dev.source, dev.label) == ("manifest", "manifest:dev")
    for spec in (libri, resolve(str(tmp_path / "af" / "clips")), resolve(str(pairs)), dev):
        raw = source(spec.source).read_split(Path(spec.root), spec.split)
        assert raw.text and all(Path(a).is_file() for a in raw.audio)


def test_source_root_split_form(tmp_path):
    make_librispeech(tmp_path / "LS", "dev-clean", rate=16000, speakers=1)
    spec = resolve(f"librispeech:{tmp_path / 'LS'}:dev-clean")
    assert (spec.source, spec.root, spec.split, spec.label) == (
        "librispeech",
        str(tmp_path / "LS"),
        "dev-clean",
        "librispeech:dev-clean",
    )
    assert len(source("librispeech").read_split(tmp_path / "LS", "dev-clean").text) == 3
    assert resolve(f"librispeech:{tmp_path / 'LS' / 'dev-clean'}").split == "dev-clean"
    hub = resolve("hub:openslr/librispeech_asr:test")
    assert (hub.source, hub.root, hub.split, hub.label, hub.path) == (
        "hub",
        "openslr/librispeech_asr",
        "test",
        "hub:librispeech_asr:test",
        None,
    )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("./nowhere", "does not exist: pass an existing folder or manifest file"),
        ("s3:bucket/x", "'s3' is not a data source"),
        ("hub:only-a-name", "hub:DATASET:SPLIT"),
        ("manifest:", "name what to read after 'manifest:'"),
        ("", "--split needs a value"),
    ],
)
def test_unknown_things_are_one_line_errors(spec, words):
    with pytest.raises(DataError) as caught:
        resolve(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_of_nothing_known_and_a_file_that_is_no_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="name its kind as SOURCE:PATH"):
        recognise(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a manifest"):
        resolve(str(tmp_path / "notes.txt"))
    with pytest.raises(DataError, match="is not a folder"):
        resolve(f"librispeech:{tmp_path / 'nope'}:test")
