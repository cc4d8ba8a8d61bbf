"""The Common Voice source and the TSV reader, on small malformed corpora made here: quotes inside
sentences, a byte-order mark, CRLF, empty sentences, missing clips, short and long rows, a line that is
not UTF-8, mixed sample rates (MP3 at 48 and 32 kHz, WAV at 16 kHz); locales, vote filters, audio_dir."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ctc_tui.core.preset import PresetError, load_preset, validate_data
from ctc_tui.core.sources import DataError
from ctc_tui.runner import audio
from ctc_tui.runner.data import load_raw_split
from ctc_tui.sources import source
from ctc_tui.sources.base import SourceOptions
from ctc_tui.sources.datacheck import scan
from ctc_tui.sources.tsv import read_tsv

HEADER = "client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"


def clip(path: Path, rate: int = 48000, seconds: float = 0.4, fmt: str = "MP3") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format=fmt)
    return path


def row(name: str, sentence: str, up: str = "2", down: str = "0") -> str:
    return f"c1\t{name}\ts1\t{sentence}\t{up}\t{down}\t\t\t\tde\t"


def locale(
    folder: Path, splits: dict[str, list[str]], clips: list[str] = (), raw: bytes | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in clips:
        clip(folder / "clips" / name)
    for split, rows in splits.items():
        (folder / f"{split}.tsv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return folder


CV = source("commonvoice")


# -- the TSV reader ------------------------------------------------------------------------------------


def test_quotes_are_text_and_never_swallow_the_next_rows(tmp_path):
    rows = [
        row("a.mp3", '"Hallo", sagte sie.'),
        row("b.mp3", '"Unbalanced quote at the start'),
        row("c.mp3", "Grüße aus „Köln“ – süß"),
        row("d.mp3", 'Er sagte "ja" und ging'),
    ]
    folder = locale(tmp_path / "de", {"train": rows}, ["a.mp3", "b.mp3", "c.mp3", "d.mp3"])
    raw = CV.read_split(folder, "train")
    assert raw.text == [
        '"Hallo", sagte sie.',
        '"Unbalanced quote at the start',
        "Grüße aus „Köln“ – süß",
        'Er sagte "ja" und ging',
    ]
    assert raw.notes == []
    # the csv module's default dialect takes the quote for a quoted field and merges rows: why QUOTE_NONE
    with (folder / "train.tsv").open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle, delimiter="\t"))) < 4


def test_a_bom_and_crlf_line_ends_are_read_as_plain_lines(tmp_path):
    folder = tmp_path / "de"
    clip(folder / "clips" / "a.mp3")
    clip(folder / "clips" / "b.mp3")
    text = "\r\n".join([HEADER, row("a.mp3", "eins zwei"), "", row("b.mp3", "drei")]) + "\r\n"
    (folder / "train.tsv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    header, rows, problems = read_tsv(folder / "train.tsv")
    assert header[0] == "client_id" and [r.line for r in rows] == [2, 4] and not problems.count
    assert CV.read_split(folder, "train").text == ["eins zwei", "drei"]


def test_every_bad_row_is_skipped_with_its_file_and_line(tmp_path):
    folder = locale(
        tmp_path / "de",
        {
            "train": [
                row("a.mp3", "gut"),
                row("b.mp3", "   "),  # line 3: an empty sentence
                row("gone.mp3", "fehlt"),  # line 4: no such clip
                "c2\tc.mp3",  # line 5: a short row
                row("a.mp3", "zu\tviele"),  # line 6: a tab inside the sentence
                row("", "kein Pfad"),  # line 7: no clip name
            ]
        },
        ["a.mp3", "b.mp3", "c.mp3"],
    )
    with (folder / "train.tsv").open("ab") as handle:
        handle.write(b"c3\tb.mp3\ts\tgr\xfc\xdfe\t2\t0\t\t\t\tde\t\n")  # line 8: Latin-1, not UTF-8
    tsv = folder / "train.tsv"
    raw = CV.read_split(folder, "train")
    assert raw.text == ["gut"] and raw.audio == [str(folder / "clips" / "a.mp3")]
    (note,) = raw.notes
    assert note.startswith("train.tsv: 6 of 7 row(s) skipped: ")
    assert f"{tsv}:8: not UTF-8 (byte 0xfc at column" in note
    assert f"{tsv}:3: empty sentence in 'sentence'" in note
    assert "and 3 more" in note
    problems = {p.split(": ", 1)[0]: p.split(": ", 1)[1] for p in _problems(folder)}
    assert problems == {
        f"{tsv}:8": "not UTF-8 (byte 0xfc at column 14)",
        f"{tsv}:3": "empty sentence in 'sentence'",
        f"{tsv}:4": f"clip gone.mp3 is not in {folder / 'clips'}",
        f"{tsv}:5": "a short row (2 of 11 fields): no 'sentence'",
        f"{tsv}:6": "12 fields, the header has 11 (a tab inside a field?)",
        f"{tsv}:7": "no clip name in 'path'",
    }


def _problems(folder: Path) -> list[str]:
    from ctc_tui.sources.commonvoice import _Clips, _Rows

    header, rows, problems = read_tsv(folder / "train.tsv")
    read = _Rows(
        folder / "train.tsv", header, ("path", "sentence"), _Clips(folder / "clips"), SourceOptions()
    )
    return read.read(rows, problems).problems.shown


def test_a_split_with_no_usable_row_is_refused_naming_the_first_problem(tmp_path):
    folder = locale(tmp_path / "de", {"train": [row("gone.mp3", "weg"), row("gone2.mp3", "auch")]})
    with pytest.raises(
        DataError, match=r"train.tsv: no usable row of 2 \(2 skipped: .*train.tsv:2: clip gone"
    ):
        CV.read_split(folder, "train")


def test_a_missing_column_names_the_key(tmp_path):
    folder = tmp_path / "de"
    folder.mkdir()
    (folder / "train.tsv").write_text("client_id\tpath\ttranscript\nc\ta.mp3\thallo\n")
    with pytest.raises(
        DataError, match=r"no column 'sentence'; columns are client_id, path, transcript \(set data.text"
    ):
        CV.read_split(folder, "train")
    # the preset's own column names replace path/sentence
    clip(folder / "clips" / "a.mp3")
    assert CV.read_split(folder, "train", text_column="transcript").text == ["hallo"]


# -- locales, splits, filters --------------------------------------------------------------------------


def test_a_release_folder_needs_the_locale_when_it_holds_several(tmp_path):
    locale(tmp_path / "de", {"train": [row("a.mp3", "eins")]}, ["a.mp3"])
    locale(tmp_path / "sw", {"train": [row("a.mp3", "moja")]}, ["a.mp3"])
    (tmp_path / "notes").mkdir()  # not a locale: no clips/ nor TSVs
    assert CV.configs(tmp_path) == ["de", "sw"]
    with pytest.raises(DataError, match=r"holds 2 locales: set data.dataset_config_name to one of de, sw"):
        CV.read_split(tmp_path, "train")
    with pytest.raises(
        DataError, match=r"no locale 'fr' in .*: set data.dataset_config_name to one of de, sw"
    ):
        CV.read_split(tmp_path, "train", options=SourceOptions(config_name="fr"))
    assert CV.read_split(tmp_path, "train", options=SourceOptions(config_name="sw")).text == ["moja"]
    assert CV.read_split(tmp_path / "de", "train").text == ["eins"]  # a locale folder itself
    assert CV.configs(tmp_path / "de") == []
    with pytest.raises(DataError, match=r"split 'valid' not found: no .*valid.tsv; found: train"):
        CV.read_split(tmp_path / "de", "valid")


def test_a_release_with_one_locale_needs_no_name_and_a_stranger_folder_is_named(tmp_path):
    locale(tmp_path / "ja" / "ja", {"dev": [row("a.mp3", "こんにちは")]}, ["a.mp3"])
    assert CV.read_split(tmp_path / "ja", "dev").text == ["こんにちは"]
    with pytest.raises(DataError, match=r"is not a Common Voice folder: expected <locale>/clips/"):
        CV.read_split(tmp_path / "ja" / "ja" / "clips", "dev")


def test_vote_filters_leave_rows_out_and_say_how_many(tmp_path):
    rows = [row("a.mp3", "eins", "2", "0"), row("a.mp3", "zwei", "0", "0"), row("a.mp3", "drei", "3", "2")]
    folder = locale(tmp_path / "de", {"validated": rows, "other": [row("a.mp3", "x", "two", "0")]}, ["a.mp3"])
    options = SourceOptions(min_up_votes=1, max_down_votes=1)
    raw = CV.read_split(folder, "validated", options=options)
    assert raw.text == ["eins"]
    assert raw.notes == ["validated.tsv: 2 row(s) left out by data.min_up_votes=1 and data.max_down_votes=1"]
    assert CV.read_split(folder, "validated").text == ["eins", "zwei", "drei"]
    with pytest.raises(DataError, match=r"other.tsv:2: up_votes 'two' is not a whole number"):
        CV.read_split(folder, "other", options=options)


def test_audio_dir_replaces_the_clips_folder(tmp_path):
    folder = locale(tmp_path / "de", {"train": [row("a.mp3", "eins")]})
    clip(tmp_path / "elsewhere" / "a.mp3")
    with pytest.raises(DataError, match="clip a.mp3 is not in"):
        CV.read_split(folder, "train")
    raw = CV.read_split(folder, "train", options=SourceOptions(audio_dir=str(tmp_path / "elsewhere")))
    assert raw.audio == [str(tmp_path / "elsewhere" / "a.mp3")]


# -- mixed sample rates: scanned from headers, decoded and resampled ------------------------------------


def test_mixed_rates_are_scanned_and_resampled_to_16k(tmp_path):
    folder = tmp_path / "de"
    clip(folder / "clips" / "a.mp3", 48000, 1.0)
    clip(folder / "clips" / "b.mp3", 32000, 0.5)
    clip(folder / "clips" / "c.wav", 16000, 0.5, fmt="WAV")
    locale(folder, {"train": [row("a.mp3", "Straße"), row("b.mp3", "Öl"), row("c.wav", "„süß“")]})
    result = scan("commonvoice", str(tmp_path), ["train"], chars_to_ignore=["„", "“"])
    (split,) = result.splits
    assert dict(split.sample_rates) == {48000: 1, 32000: 1, 16000: 1}
    assert abs(split.seconds - 2.0) < 0.1 and split.columns[:4] == [
        "client_id",
        "path",
        "sentence_id",
        "sentence",
    ]
    assert {"ß", "ö", "ü"} <= set(result.vocab) and not {"„", "“"} & set(result.vocab)
    for name, rate in (("a.mp3", 48000), ("b.mp3", 32000)):
        samples, original = audio.load(str(folder / "clips" / name), 16000)
        assert original == rate and samples.dtype == np.float32
        assert abs(samples.shape[0] - (16000 if rate == 48000 else 8000)) < 1200  # MP3 adds a little


# -- the preset, the check and the runner's reading ----------------------------------------------------


def test_the_preset_keys_and_their_limits(tmp_path):
    data = {"source": "commonvoice", "dataset_dir": "cv", "audio_dir": "clips", "min_up_votes": 2}
    (tmp_path / "p.yaml").write_text(f"data: {data}\n".replace("'", ""))
    preset = load_preset(tmp_path / "p.yaml")
    assert preset.data.audio_dir == str(tmp_path / "clips")  # relative to the preset file, like dataset_dir
    with pytest.raises(PresetError, match="audio_dir is read by the sources manifest and commonvoice"):
        validate_data({"data": {"source": "librispeech", "dataset_dir": "x", "audio_dir": "y"}}, "t")
    with pytest.raises(PresetError, match="filter source 'commonvoice' only"):
        validate_data({"data": {"source": "manifest", "dataset_dir": "x", "max_down_votes": 0}}, "t")
    with pytest.raises(PresetError, match="min_up_votes"):
        validate_data({"data": {"source": "commonvoice", "dataset_dir": "x", "min_up_votes": -1}}, "t")


def commonvoice_preset(root: Path, *overrides: str):
    base = {"source": "commonvoice", "dataset_dir": str(root), "train_split_name": "train"}
    return validate_data({"data": base | {"eval_split_name": "dev"}}, "test", None, list(overrides))


def test_check_warns_with_the_skipped_rows_and_refuses_an_unnamed_locale(tmp_path):
    locale(
        tmp_path / "de",
        {"train": [row("a.mp3", "eins"), row("x.mp3", "weg")], "dev": [row("a.mp3", "zwei")]},
        ["a.mp3"],
    )
    locale(tmp_path / "fr", {"train": [row("a.mp3", "un")], "dev": [row("a.mp3", "deux")]}, ["a.mp3"])
    findings = CV.check(commonvoice_preset(tmp_path), {}, lambda: False)
    assert [f.level for f in findings] == ["error", "error"]
    assert "set data.dataset_config_name to one of de, fr" in findings[0].message
    findings = CV.check(commonvoice_preset(tmp_path, "data.dataset_config_name=de"), {}, lambda: False)
    messages = [f.render() for f in findings]
    assert messages[0].startswith("warning: data.train_split_name: train.tsv: 1 of 2 row(s) skipped: ")
    assert f"{tmp_path / 'de' / 'train.tsv'}:3: clip x.mp3 is not in" in messages[0]
    assert "resampled to 16000 Hz" in messages[1] and len(messages) == 2


def test_the_runner_reads_joined_splits_with_their_notes(tmp_path):
    locale(
        tmp_path / "de",
        {"train": [row("a.mp3", "eins"), row("", "x")], "dev": [row("a.mp3", "zwei")]},
        ["a.mp3"],
    )
    preset = commonvoice_preset(tmp_path / "de")
    raw = load_raw_split(preset.data, "train+dev")
    assert (
        raw.text == ["eins", "zwei"] and len(raw.notes) == 1 and "train.tsv:3: no clip name" in raw.notes[0]
    )


# -- manifests: audio_dir, TSV quoting, the line of a bad row -------------------------------------------


def test_a_tsv_manifest_keeps_quotes_and_audio_dir_places_its_paths(tmp_path):
    clip(tmp_path / "audio" / "a.wav", 16000, fmt="WAV")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.tsv").write_text('audio\ttext\na.wav\t"Er sagt "hallo\n')
    manifest = source("manifest")
    with pytest.raises(
        DataError, match=r"line 2: .*lists/a.wav \(relative paths start at the manifest's folder"
    ):
        manifest.read_split(tmp_path / "lists", "train")
    raw = manifest.read_split(
        tmp_path / "lists", "train", options=SourceOptions(audio_dir=str(tmp_path / "audio"))
    )
    assert raw.text == ['"Er sagt "hallo'] and raw.columns == ["audio", "text"]


def test_a_manifest_refuses_a_short_row_naming_its_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,audio\r\nhallo,a.wav\r\nkurz\r\n")
    with pytest.raises(
        DataError, match=r"train.csv:3: no audio path in 'audio' \(a short row\?\): fix or remove"
    ):
        source("manifest").read_split(tmp_path, "train")
    (tmp_path / "dev.tsv").write_bytes(b"audio\ttext\na.wav\tgr\xfc\xdfe\n")
    with pytest.raises(DataError, match=r"dev.tsv:2: not UTF-8 .*: save the manifest as UTF-8"):
        source("manifest").read_split(tmp_path, "dev")


def test_the_bytes_of_an_mp3_decode_like_its_file(tmp_path):
    path = clip(tmp_path / "a.mp3", 48000, 0.5)
    from_file, _ = audio.load(str(path), 16000)
    from_bytes, rate = audio.load(io.BytesIO(path.read_bytes()).getvalue(), 16000)
    assert rate == 48000 and np.allclose(from_file, from_bytes)


def test_the_check_summary_lists_locales_splits_rates_columns_and_vocabulary(tmp_path):
    from ctc_tui.sources.summary import data_summary

    locale(tmp_path / "de", {"train": [row("a.mp3", "Grüße")], "dev": [row("a.mp3", "Öl")]}, ["a.mp3"])
    locale(tmp_path / "fr", {"train": [row("a.mp3", "un")]}, ["a.mp3"])
    lines = data_summary(commonvoice_preset(tmp_path, "data.dataset_config_name=de"))
    assert lines[:2] == ["data:", "  locales: de, fr"]
    assert lines[2].split() == ["train", "1", "clips", "0.00", "h", "48000", "Hz"]
    assert lines[4] == "  columns: " + HEADER.replace("\t", " ")
    assert lines[5] == "  vocabulary (8 tokens): egrßü|"  # the training split's, lower-cased
    hub = validate_data({"data": {"dataset_name": "x"}}, "t")
    assert data_summary(hub) == []


def test_a_broken_clip_is_counted_unreadable_and_refused_by_the_decoder_with_its_name(tmp_path):
    folder = tmp_path / "de"
    clip(folder / "clips" / "good.mp3")
    (folder / "clips" / "empty.mp3").write_bytes(b"")
    (folder / "clips" / "text.mp3").write_text("not audio at all\n" * 50)
    locale(folder, {"train": [row("good.mp3", "eins"), row("empty.mp3", "zwei"), row("text.mp3", "drei")]})
    (split,) = scan("commonvoice", str(folder), ["train"]).splits
    assert (split.clips, split.unreadable, dict(split.sample_rates)) == (3, 2, {48000: 1})
    for name in ("empty.mp3", "text.mp3"):
        with pytest.raises(audio.AudioError, match=f"cannot decode .*{name}"):
            audio.load(str(folder / "clips" / name), 16000)


def test_the_hubs_common_voice_in_the_local_cache_still_passes_the_hub_check(tmp_path):
    name = "mozilla-foundation/common_voice_17_0"
    data = {
        "source": "hub",
        "dataset_name": name,
        "dataset_config_name": "de",
        "text_column_name": "sentence",
    }
    preset = validate_data({"data": data}, "test")
    env = {"HF_HOME": str(tmp_path), "HF_DATASETS_OFFLINE": "1"}
    assert source("hub").check(preset, env, online=lambda: False)[0].level == "error"  # not cached yet
    (tmp_path / "hub" / "datasets--mozilla-foundation--common_voice_17_0").mkdir(parents=True)
    assert source("hub").check(preset, env, online=lambda: pytest.fail("asked the network")) == []


def test_the_data_check_of_a_release_without_a_locale_lists_them_and_says_it_once(tmp_path):
    locale(tmp_path / "de", {"train": [row("a.mp3", "eins")], "dev": [row("a.mp3", "zwei")]}, ["a.mp3"])
    locale(tmp_path / "sw", {"train": [row("a.mp3", "moja")]}, ["a.mp3"])
    result = scan("commonvoice", str(tmp_path), ["train", "dev"])
    assert result.configs == ["de", "sw"] and not result.splits
    assert result.errors == [f"{tmp_path} holds 2 locales: set data.dataset_config_name to one of de, sw"]
    chosen = scan("commonvoice", str(tmp_path), ["train+dev"], options=SourceOptions(config_name="de"))
    assert [(s.split, s.clips) for s in chosen.splits] == [("train", 1), ("dev", 1)] and not chosen.errors
