"""The data sources (ctc_tui.sources): each one reads, scans and checks a tiny split made here; the one
tuple of source names agrees with the modules and the preset; the preprocessing-cache keys are pinned."""

from __future__ import annotations

import ast
import json
import os
import sys
import wave
from pathlib import Path
from typing import get_args

import pytest

from ctc_tui.core.preset import DataSource, PresetError, load_preset, validate_data
from ctc_tui.core.sources import SOURCES, DataError, RawSplit, file_fingerprint, fingerprint
from ctc_tui.sources import local_sources, source
from ctc_tui.sources.audioinfo import audio_info, flac_info
from ctc_tui.sources.base import Source
from ctc_tui.sources.datacheck import scan
from ctc_tui.sources.scan import nice_edges
from tests.conftest import REPO

PACKAGE = REPO / "ctc_tui" / "sources"
MTIME_NS = 1_700_000_000_123_456_789  # every pinned file's modification time
SETTINGS = json.dumps(
    {"chars": [",", "?"], "lower": True, "vocab": {"a": 1}, "max": 20.0, "min": 0.0}, sort_keys=True
)


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path


def make_libri(root: Path, split: str = "dev-clean") -> list[str]:
    folder = root / split / "19" / "198"
    texts = ["HELLO WORLD", "GOOD BYE"]
    for i in range(len(texts)):
        write_wav(folder / f"19-198-{i:04d}.wav")
    (folder / "19-198.trans.txt").write_text("".join(f"19-198-{i:04d} {t}\n" for i, t in enumerate(texts)))
    return texts


def checked(tmp_path: Path, **data):
    data.setdefault("dataset_dir", str(tmp_path))
    return validate_data({"data": data, "training": {"do_eval": False}}, "test")


# -- the one tuple and the modules ---------------------------------------------------------------------


def test_the_preset_choices_are_the_tuple():
    assert get_args(DataSource) == SOURCES


def test_every_name_has_its_module_and_every_module_its_name():
    modules = {p.stem for p in PACKAGE.glob("*.py") if "\nSOURCE = " in p.read_text()}
    assert modules == set(SOURCES)
    for name in SOURCES:
        found = source(name)
        assert isinstance(found, Source) and found.name == name


def test_local_sources_come_from_the_modules_and_need_a_dataset_dir():
    assert (
        local_sources()
        == tuple(n for n in SOURCES if source(n).local)
        == ("manifest", "audiofolder", "librispeech", "commonvoice")
    )
    for name in local_sources():
        with pytest.raises(PresetError, match="needs data.dataset_dir"):
            validate_data({"data": {"source": name}}, "test")


def test_an_unknown_source_names_the_choices():
    with pytest.raises(
        DataError, match="set data.source to one of hub, manifest, audiofolder, librispeech, commonvoice"
    ):
        source("s3")


def test_sources_import_only_the_standard_library_and_the_core():
    allowed = ("ctc_tui.core.", "ctc_tui.sources", "__future__", "soundfile")
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ctc_tui"):
                assert node.module.startswith(allowed), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top == "soundfile" or top in sys.stdlib_module_names, (
                        f"{path.name} imports {alias.name}"
                    )


# -- pinned cache keys (computed on the code before the sources became a package) -----------------------


def test_fingerprint_is_pinned():
    assert fingerprint() == "e3b0c44298fc1c149afb"
    assert fingerprint("a", 1, [1, 2], {"b": None}) == "978f39363ca0786c2a38"
    assert fingerprint(Path("/x")) == "711e227f4447768e5458"


def test_file_fingerprint_of_missing_files_is_pinned():
    assert file_fingerprint(["/nowhere/a.wav", "/nowhere/b.wav"], ["A", "B"]) == "8e97e22119b5ce9800c2"


def _demo_skeleton(tmp_path: Path) -> None:
    """The demo corpus's names, sizes and transcripts with fixed mtimes (sparse files, nothing decoded)."""
    corpus = REPO / "presets" / "data" / "demo-speech"
    for f in sorted(corpus.rglob("*")):
        if not f.is_file():
            continue
        copy = tmp_path / "data" / "demo-speech" / f.relative_to(corpus)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".csv":
            copy.write_bytes(f.read_bytes())
        else:
            with open(copy, "wb") as handle:
                handle.truncate(f.stat().st_size)
        os.utime(copy, ns=(MTIME_NS, MTIME_NS))


def test_demo_preset_cache_keys_are_pinned(tmp_path, monkeypatch):
    from ctc_tui.runner.data import cache_key, limit, load_raw_split

    _demo_skeleton(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths: the same strings on every machine
    demo = load_preset(REPO / "presets" / "demo-cpu.yaml")
    cfg = demo.data.model_copy(update={"dataset_dir": "data/demo-speech"})
    train, evals = load_raw_split(cfg, "train"), load_raw_split(cfg, "eval")
    assert (len(train.text), len(evals.text)) == (800, 100)
    assert (train.fingerprint, cache_key(train, SETTINGS, 16000, "train")) == (
        "7ec67ffaa6226f57de13",
        "49424574f776d9f84e02",
    )
    assert (evals.fingerprint, cache_key(evals, SETTINGS, 16000, "eval")) == (
        "7b0c2fa3f7c3d5f0a190",
        "973d78a85a67ce6eacc2",
    )
    both = load_raw_split(cfg, "train+eval")
    assert (both.fingerprint, cache_key(both, SETTINGS, 16000, "train")) == (
        "c89775bfdbda1af87af8",
        "dd5d4d864f4b6f553e9e",
    )
    first = limit(train, 100)
    assert (first.fingerprint, cache_key(first, SETTINGS, 16000, "train")) == (
        "034dc99d5921e362142f",
        "3ae1640aca53060e0b67",
    )


def test_manifest_cache_keys_are_pinned(tmp_path, monkeypatch):
    from ctc_tui.runner.data import cache_key, load_raw_split

    corpus = tmp_path / "corpus"
    for i, size in enumerate((100, 2000, 30000)):
        clip = corpus / "clips" / f"c{i}.wav"
        clip.parent.mkdir(parents=True, exist_ok=True)
        with open(clip, "wb") as handle:
            handle.truncate(size)
        os.utime(clip, ns=(MTIME_NS, MTIME_NS))
    (corpus / "train.csv").write_text("audio,text\nclips/c0.wav,HELLO THERE\nclips/c1.wav,BYE\n")
    (corpus / "dev.jsonl").write_text('{"audio": "clips/c2.wav", "text": "Y"}\n')
    monkeypatch.chdir(tmp_path)
    cfg = validate_data({"data": {"source": "manifest", "dataset_dir": "corpus"}}, "t").data
    train, dev = load_raw_split(cfg, "train"), load_raw_split(cfg, "dev")
    assert (train.fingerprint, cache_key(train, SETTINGS, 16000, "train")) == (
        "0831bff4e155b20eb73f",
        "83a88a962c11d024cbe5",
    )
    assert (dev.fingerprint, cache_key(dev, SETTINGS, 16000, "dev")) == (
        "c81f4502270ade4ff41f",
        "411c038aa08e9bf24177",
    )


# -- librispeech ----------------------------------------------------------------------------------------


def test_librispeech_reads_the_tree(tmp_path):
    texts = make_libri(tmp_path)
    raw = source("librispeech").read_split(tmp_path, "dev-clean")
    assert raw.text == texts
    assert [Path(p).name for p in raw.audio] == ["19-198-0000.wav", "19-198-0001.wav"]


def test_librispeech_missing_split_lists_the_found_ones(tmp_path):
    make_libri(tmp_path)
    with pytest.raises(DataError, match="LibriSpeech split 'test-other' not found .*; found: dev-clean"):
        source("librispeech").read_split(tmp_path, "test-other")


def test_librispeech_line_without_audio_names_the_line(tmp_path):
    make_libri(tmp_path)
    trans = next(tmp_path.rglob("*.trans.txt"))
    trans.write_text(trans.read_text() + "19-198-0099 GHOST\n")
    with pytest.raises(DataError, match=r"trans.txt:3: no audio file for utterance 19-198-0099"):
        source("librispeech").read_split(tmp_path, "dev-clean")


# -- audiofolder ----------------------------------------------------------------------------------------


def test_audiofolder_reads_its_metadata(tmp_path):
    write_wav(tmp_path / "train" / "a.wav")
    write_wav(tmp_path / "train" / "b.wav")
    (tmp_path / "train" / "metadata.csv").write_text("file_name,sentence\na.wav,ONE\nb.wav,TWO\n")
    raw = source("audiofolder").read_split(tmp_path, "train", text_column="sentence")
    assert raw.text == ["ONE", "TWO"]
    assert raw.audio == [str(tmp_path / "train" / n) for n in ("a.wav", "b.wav")]


def test_audiofolder_pairs_audio_with_txt_transcripts(tmp_path):
    write_wav(tmp_path / "eval" / "x.wav")
    (tmp_path / "eval" / "x.txt").write_text("  SPOKEN TEXT \n")
    write_wav(tmp_path / "eval" / "untranscribed.wav")
    raw = source("audiofolder").read_split(tmp_path, "eval")
    assert raw.text == ["SPOKEN TEXT"] and len(raw.audio) == 1


def test_audiofolder_missing_split_and_empty_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="audiofolder split 'dev' not found .*; found: train"):
        source("audiofolder").read_split(tmp_path, "dev")
    with pytest.raises(DataError, match="no metadata.csv/metadata.jsonl and no audio files with .txt"):
        source("audiofolder").read_split(tmp_path, "train")


# -- manifest -------------------------------------------------------------------------------------------


def test_manifest_csv_tsv_and_jsonl(tmp_path):
    write_wav(tmp_path / "clips" / "a.wav")
    (tmp_path / "train.csv").write_text("audio,text\nclips/a.wav,HI\n")
    (tmp_path / "dev.tsv").write_text("audio\ttext\nclips/a.wav\tTAB\n")
    (tmp_path / "test.jsonl").write_text('{"audio": "clips/a.wav", "text": null}\n\n')
    manifest = source("manifest")
    assert manifest.read_split(tmp_path, "train").text == ["HI"]
    assert manifest.read_split(tmp_path, "dev").text == ["TAB"]
    assert manifest.read_split(tmp_path, "test").text == [""]
    assert manifest.read_split(tmp_path, "train.csv").audio == [str(tmp_path / "clips" / "a.wav")]


def test_manifest_missing_column_names_the_option(tmp_path):
    (tmp_path / "train.csv").write_text("path,text\nclips/a.wav,HI\n")
    wanted = r"no column 'audio'; columns are path, text \(set data.audio_column_name\)"
    with pytest.raises(DataError, match=wanted):
        source("manifest").read_split(tmp_path, "train")


def test_manifest_bad_json_line_names_the_line(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"audio": "a.wav", "text": "A"}\n{broken\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not a JSON object per line"):
        source("manifest").read_split(tmp_path, "train")


def test_manifest_listing_absent_audio_says_how_many(tmp_path):
    (tmp_path / "train.csv").write_text("audio,text\ngone.wav,A\n")
    with pytest.raises(DataError, match=r"1 audio file\(s\) listed but missing, e.g. .*gone.wav"):
        source("manifest").read_split(tmp_path, "train")


def test_manifest_for_an_unknown_split_lists_the_manifests(tmp_path):
    (tmp_path / "train.csv").write_text("audio,text\n")
    wanted = r"no manifest for split 'dev' in .* \(looked for dev.csv/.*; found: train.csv"
    with pytest.raises(DataError, match=wanted):
        source("manifest").read_split(tmp_path, "dev")


# -- hub (login-node half) ------------------------------------------------------------------------------


def test_hub_splits_are_not_read_on_the_login_node(tmp_path):
    with pytest.raises(DataError, match="loaded by the runner with the datasets library"):
        source("hub").read_split(tmp_path, "train")


def test_hub_check_offline_and_uncached_names_the_fix(tmp_path):
    preset = validate_data({"data": {"source": "hub", "dataset_name": "org/speech"}}, "test")
    env = {"HF_HOME": str(tmp_path), "HF_DATASETS_OFFLINE": "1"}
    (finding,) = source("hub").check(preset, env, online=lambda: pytest.fail("asked the network"))
    assert (finding.level, finding.key) == ("error", "data.dataset_name")
    assert "'org/speech' is not in the datasets cache" in finding.message
    assert "hub is offline" in finding.message
    (tmp_path / "datasets" / "org___speech").mkdir(parents=True)
    assert source("hub").check(preset, env, online=lambda: False) == []


def test_hub_check_accepts_a_packaged_loader_without_asking_the_network():
    preset = validate_data({"data": {"source": "hub", "dataset_name": "csv"}}, "test")
    assert source("hub").check(preset, {}, online=lambda: pytest.fail("asked the network")) == []


# -- local checks ---------------------------------------------------------------------------------------


def test_local_check_missing_folder_names_the_key(tmp_path):
    preset = checked(tmp_path, source="librispeech", dataset_dir=str(tmp_path / "nowhere"))
    (finding,) = source("librispeech").check(preset, {}, online=lambda: True)
    assert finding.key == "data.dataset_dir" and "does not exist: fix data.dataset_dir" in finding.message


def test_local_check_missing_split_and_other_sample_rates(tmp_path):
    write_wav(tmp_path / "train" / "a.wav", rate=8000)
    (tmp_path / "train" / "a.txt").write_text("A")
    preset = checked(tmp_path, source="audiofolder", train_split_name="train+extra")
    findings = source("audiofolder").check(preset, {}, online=lambda: True)
    assert [(f.level, f.key) for f in findings] == [
        ("error", "data.train_split_name"),
        ("warning", "data.dataset_dir"),
    ]
    assert findings[0].message.endswith("; set data.train_split_name to an existing split")
    assert "sampled at 8000 Hz, not 16000 Hz" in findings[1].message


# -- scans and headers ----------------------------------------------------------------------------------


def test_scan_of_a_split_reads_headers(tmp_path):
    make_libri(tmp_path)
    result = scan("librispeech", str(tmp_path), ["dev-clean"], chars_to_ignore=[], lower=True)
    assert result.ok
    (split,) = result.splits
    assert (split.clips, split.measured, split.unreadable) == (2, 2, 0)
    assert split.sample_rates == {16000: 2} and split.hours == pytest.approx(1.0 / 3600)
    assert sum(c for _, c in split.histogram()) == 2
    assert "".join(k for k in result.vocab if len(k) == 1) == "bdeghlorwy|"  # of the first split


def test_scan_refuses_what_it_cannot_read(tmp_path):
    assert scan("hub", None, ["train"]).errors == [
        "source 'hub': the data check reads local data only; hub datasets are checked by ctc-tui check"
    ]
    empty = "data.dataset_dir is empty: pick the folder holding the data"
    assert scan("manifest", "", ["train"]).errors == [empty]
    assert scan("manifest", str(tmp_path / "no"), ["train"]).errors == [f"{tmp_path / 'no'} is not a folder"]
    bad = scan("manifest", str(tmp_path), ["train+dev"])
    assert not bad.ok and len(bad.errors) == 2 and all("no manifest for split" in e for e in bad.errors)


def test_audio_info_reads_wav_and_flac_headers(tmp_path):
    assert audio_info(str(write_wav(tmp_path / "a.wav", seconds=0.25, rate=22050))) == (22050, 5512)
    packed = (44100 << 44) | (0 << 41) | (15 << 36) | 123456
    head = b"fLaC" + b"\0\0\0\x22" + b"\0" * 10 + packed.to_bytes(8, "big") + b"\0" * 16
    assert flac_info(head) == (44100, 123456)
    (tmp_path / "x.flac").write_bytes(head)
    assert audio_info(str(tmp_path / "x.flac")) == (44100, 123456)
    (tmp_path / "junk.ogg").write_bytes(b"not audio at all")
    assert audio_info(str(tmp_path / "junk.ogg")) is None
    assert audio_info(str(tmp_path / "absent.wav")) is None


def test_nice_edges_and_histogram_bins():
    assert nice_edges(1.0) == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert nice_edges(40.0) == (0, 5, 10, 15, 20, 25, 30, 35, 40)


def test_raw_split_is_the_shared_table():
    raw = RawSplit(audio=["a.wav"], text=["A"], fingerprint="f")
    assert (raw.audio, raw.text, raw.fingerprint) == (["a.wav"], ["A"], "f")
