"""Each data source on small data made here, the LibriSpeech layout at 22.05 kHz included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ctc_tui.core.preset import validate_data
from ctc_tui.runner import audio as audio_io
from ctc_tui.runner.data import DataError, limit, load_raw_split, preprocess
from ctc_tui.runner.text import make_normaliser
from tests.conftest import make_audiofolder, make_librispeech, write_audio


def cfg(**data):
    return validate_data({"data": data}, "test").data


def test_librispeech_tree_at_22k(tmp_path):
    texts = make_librispeech(tmp_path, "train-clean-100", rate=22050)
    make_librispeech(tmp_path, "dev-clean", rate=22050, speakers=1)
    c = cfg(source="librispeech", dataset_dir=str(tmp_path), train_split_name="train-clean-100+dev-clean")
    raw = load_raw_split(c, "train-clean-100")
    assert raw.text == texts and all(Path(p).suffix == ".flac" for p in raw.audio)
    both = load_raw_split(c, c.train_split_name)
    assert len(both.text) == len(texts) + 3
    with pytest.raises(DataError, match="found: dev-clean, train-clean-100"):
        load_raw_split(c, "test-other")


def test_librispeech_missing_audio_names_the_line(tmp_path):
    make_librispeech(tmp_path, "dev-clean", speakers=1)
    trans = next(tmp_path.rglob("*.trans.txt"))
    trans.write_text(trans.read_text() + "0-100-0099 GHOST LINE\n")
    with pytest.raises(DataError, match=r"trans.txt:4: no audio file for utterance 0-100-0099"):
        load_raw_split(cfg(source="librispeech", dataset_dir=str(tmp_path)), "dev-clean")


def test_audiofolder_with_metadata_and_with_txt_files(tmp_path):
    make_audiofolder(tmp_path, "train", [("a.wav", "HELLO, WORLD."), ("b.wav", "DON'T")])
    raw = load_raw_split(cfg(source="audiofolder", dataset_dir=str(tmp_path)), "train")
    assert raw.text == ["HELLO, WORLD.", "DON'T"]
    other = tmp_path / "other" / "eval"
    write_audio(other / "x.flac", 0.3, 8000)
    (other / "x.txt").write_text("ONE TWO\n")
    raw = load_raw_split(cfg(source="audiofolder", dataset_dir=str(tmp_path / "other")), "eval")
    assert raw.text == ["ONE TWO"]


def test_manifests_csv_tsv_jsonl_with_relative_paths(tmp_path):
    write_audio(tmp_path / "clips" / "a.wav", 0.3, 16000)
    write_audio(tmp_path / "clips" / "b.wav", 0.3, 16000)
    (tmp_path / "train.csv").write_text('path,sentence\nclips/a.wav,"HELLO, THERE"\nclips/b.wav,BYE\n')
    (tmp_path / "dev.jsonl").write_text(json.dumps({"path": "clips/a.wav", "sentence": "X"}) + "\n\n")
    (tmp_path / "test.tsv").write_text("path\tsentence\nclips/b.wav\tY\n")
    c = cfg(
        source="manifest", dataset_dir=str(tmp_path), audio_column_name="path", text_column_name="sentence"
    )
    assert load_raw_split(c, "train").text == ["HELLO, THERE", "BYE"]
    assert load_raw_split(c, "dev").audio == [str(tmp_path / "clips" / "a.wav")]
    assert load_raw_split(c, "test").text == ["Y"]
    assert load_raw_split(c, str(tmp_path / "train.csv")).text == ["HELLO, THERE", "BYE"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,text\nx.wav,A\n", "no column 'path'"),
        ("", "no rows"),
        ("path,sentence\nmissing.wav,A\n", "missing"),
    ],
)
def test_manifest_errors_are_specific(tmp_path, content, message):
    (tmp_path / "train.csv").write_text(content)
    c = cfg(
        source="manifest", dataset_dir=str(tmp_path), audio_column_name="path", text_column_name="sentence"
    )
    with pytest.raises(DataError, match=message):
        load_raw_split(c, "train")


def test_bad_jsonl_line_is_reported(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"audio": "a.wav", "text": "A"}\n{not json\n')
    with pytest.raises(DataError, match=r"train.jsonl:2"):
        load_raw_split(cfg(source="manifest", dataset_dir=str(tmp_path)), "train")


def test_audio_is_downmixed_and_resampled(tmp_path):
    stereo = write_audio(tmp_path / "s.wav", 1.0, 44100, channels=2)
    samples, rate = audio_io.load(str(stereo), 16000)
    assert rate == 44100 and samples.ndim == 1 and abs(len(samples) - 16000) <= 2
    low = write_audio(tmp_path / "l.flac", 0.5, 8000)
    samples, _ = audio_io.load({"path": None, "bytes": low.read_bytes()}, 16000)
    assert abs(len(samples) - 8000) <= 2
    (tmp_path / "junk.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(audio_io.AudioError):
        audio_io.load(str(tmp_path / "junk.wav"), 16000)


class _Tok:
    """A character tokenizer standing in for Wav2Vec2CTCTokenizer in this preprocessing test."""

    def __call__(self, text):
        return type("Out", (), {"input_ids": [ord(c) % 50 for c in text]})()


class _FE:
    sampling_rate = 16000
    model_input_names = ["input_values"]

    def __call__(self, samples, sampling_rate):
        norm = (samples - samples.mean()) / (samples.std() + 1e-7)
        return type("Out", (), {"input_values": [norm]})()

    def to_dict(self):
        return {"rate": 16000}


def test_preprocess_filters_resamples_and_caches(tmp_path):
    make_librispeech(tmp_path, "train", rate=22050, speakers=2, per_chapter=3)
    (tmp_path / "train" / "1" / "101" / "1-101-0002.flac").write_bytes(b"broken")
    c = cfg(
        source="librispeech", dataset_dir=str(tmp_path), max_duration_in_seconds=0.65, chars_to_ignore=","
    )
    raw = limit(load_raw_split(c, "train"), 6)
    normalise = make_normaliser(c.chars_to_ignore)
    first = preprocess(raw, "train", normalise, _Tok(), _FE(), c, "settings")
    assert not first.from_cache
    assert first.dropped_broken == 1 and first.dropped_long == 1  # the other 0.7 s clip is over 0.65 s
    assert first.resampled_from == [22050]
    lengths = first.dataset["input_length"]
    assert all(abs(n - round(s * 16000)) <= 2 for n, s in zip(lengths, [0.5, 0.6, 0.5, 0.6]))
    assert len(lengths) == 4
    assert first.dataset["text"][1] == "don't stop"
    values = np.asarray(first.dataset[0]["input_values"])
    assert abs(values.mean()) < 1e-3
    again = preprocess(raw, "train", normalise, _Tok(), _FE(), c, "settings")
    assert again.from_cache and len(again.dataset) == len(first.dataset)
    changed = preprocess(raw, "train", normalise, _Tok(), _FE(), c, "other settings")
    assert not changed.from_cache


def _hub_style_parquet(folder: Path, split: str, clips: list[tuple[Path, str]]) -> None:
    """A split stored the way hub audio datasets are (parquet, an Audio struct of bytes + path, and the
    datasets feature metadata), written with pyarrow alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio = pa.array(
        [{"bytes": p.read_bytes(), "path": p.name} for p, _ in clips],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    table = pa.table({"audio": audio, "text": [t for _, t in clips], "speaker_id": list(range(len(clips)))})
    features = {
        "audio": {"_type": "Audio", "sampling_rate": 16000},
        "text": {"dtype": "string", "_type": "Value"},
        "speaker_id": {"dtype": "int64", "_type": "Value"},
    }
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), folder / f"{split}-00000-of-00001.parquet")


def test_hub_source_through_datasets_load_dataset(tmp_path):
    clips = [(write_audio(tmp_path / "src" / f"{i}.flac", 0.4, 22050), f"WORD {i}") for i in range(3)]
    repo = tmp_path / "my_dataset"
    _hub_style_parquet(repo / "data", "train", clips)
    _hub_style_parquet(repo / "data", "validation", clips[:1])
    c = cfg(source="hub", dataset_name=str(repo))
    raw = load_raw_split(c, "train")
    assert raw.text == ["WORD 0", "WORD 1", "WORD 2"]
    assert isinstance(raw.audio[0], dict) and raw.audio[0]["bytes"]
    samples, rate = audio_io.load(raw.audio[1], 16000)
    assert rate == 22050 and abs(len(samples) - 6400) <= 2
    assert len(load_raw_split(c, "train+validation").text) == 4
    with pytest.raises(DataError, match="no column 'sentence'"):
        load_raw_split(cfg(source="hub", dataset_name=str(repo), text_column_name="sentence"), "train")
    with pytest.raises(DataError, match="cannot load"):
        load_raw_split(cfg(source="hub", dataset_name=str(tmp_path / "nothing-here")), "train")


def test_preprocessing_at_once_into_one_shared_cache(tmp_path):
    """The main rank of each node preprocesses at the same time into one cache when the nodes share a
    home directory: every one gets the complete result, and one folder is left."""
    import threading
    import time

    from ctc_tui.runner.data import cache_root

    make_librispeech(tmp_path, "train", rate=22050, speakers=2, per_chapter=3)
    c = cfg(source="librispeech", dataset_dir=str(tmp_path))
    raw = load_raw_split(c, "train")
    normalise = make_normaliser(c.chars_to_ignore)
    writing = threading.Event()

    class _SlowFE(_FE):  # slow enough for the three to overlap
        calls = 0

        def __call__(self, samples, sampling_rate):
            _SlowFE.calls += 1
            if _SlowFE.calls == len(raw.text):  # the first rank's last clip: its cache files come next
                writing.set()
            time.sleep(0.05)
            return super().__call__(samples, sampling_rate)

    results, errors = [], []

    def rank(k):
        if k:
            writing.wait(30)  # the later ones come while the first one is writing its cache
        try:
            results.append(preprocess(raw, "train", normalise, _Tok(), _SlowFE(), c, "settings"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert [len(r.dataset) for r in results] == [6, 6, 6]
    assert len({r.cache_dir for r in results}) == 1
    assert all(r.dataset["text"] == results[0].dataset["text"] for r in results)
    assert [p.name for p in (cache_root() / "preprocessed").iterdir()] == [results[0].cache_dir.name]


# -- hub data stays in the arrow files (issue 12) ---------------------------------------------------------


def _hub_repo(tmp_path: Path, count: int = 5) -> Path:
    clips = [
        (write_audio(tmp_path / "src" / f"{i}.flac", 0.3 + 0.1 * i, 22050, freq=300 + 40 * i), f"Word, {i}")
        for i in range(count)
    ]
    repo = tmp_path / "my_dataset"
    _hub_style_parquet(repo / "data", "train", clips)
    _hub_style_parquet(repo / "data", "validation", clips[:2])
    return repo


def test_hub_split_is_a_lazy_column_over_the_arrow_files(tmp_path):
    from ctc_tui.runner.data import HubAudio

    c = cfg(source="hub", dataset_name=str(_hub_repo(tmp_path)))
    raw = load_raw_split(c, "train")
    assert isinstance(raw.audio, HubAudio) and len(raw.audio) == 5
    assert isinstance(raw.text, list) and raw.text[4] == "Word, 4"
    assert raw.audio[-1]["path"] == "4.flac" and raw.audio[0]["bytes"]
    first = limit(raw, 2)
    assert isinstance(first.audio, HubAudio) and len(first.audio) == 2 and first.text == raw.text[:2]
    both = load_raw_split(c, "train+validation")
    assert isinstance(both.audio, HubAudio) and len(both.audio) == 7
    assert both.audio[5]["path"] == "0.flac"  # the validation split's first clip
    rows = [v["path"] for batch in both.audio.batches(3, 7, 2) for v in batch]
    assert rows == ["3.flac", "4.flac", "0.flac", "1.flac"]
    with pytest.raises(IndexError):
        raw.audio[5]


def test_hub_split_preprocesses_from_the_files_and_caches(tmp_path, monkeypatch):
    """Preprocessing streams record batches (never the row-by-row lazy column); the second call (a
    non-main rank after the main one) opens the cache without decoding anything."""
    from ctc_tui.runner import data as data_mod

    c = cfg(source="hub", dataset_name=str(_hub_repo(tmp_path)), chars_to_ignore=",")
    raw = load_raw_split(c, "train+validation")
    normalise = make_normaliser(c.chars_to_ignore)

    def no_row_reads(self, index):
        raise AssertionError("preprocessing read the audio row by row")

    monkeypatch.setattr(data_mod.HubAudio, "__getitem__", no_row_reads)
    monkeypatch.setattr(data_mod, "BATCH_CLIPS", 2)  # several batches and record batches
    first = preprocess(raw, "train", normalise, _Tok(), _FE(), c, "settings")
    assert not first.from_cache and len(first.dataset) == 7 and first.resampled_from == [22050]
    assert first.dataset["text"][:3] == ["word 0", "word 1", "word 2"]
    lengths = first.dataset["input_length"]
    assert all(abs(n - round(s * 16000)) <= 2 for n, s in zip(lengths, [0.3, 0.4, 0.5, 0.6, 0.7, 0.3, 0.4]))
    assert abs(float(np.mean(first.dataset[3]["input_values"]))) < 1e-3

    class _NoDecoding(_FE):
        def __call__(self, samples, sampling_rate):
            raise AssertionError("a non-main rank decoded audio")

    monkeypatch.setattr(data_mod.audio, "load", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    again = preprocess(raw, "train", normalise, _Tok(), _NoDecoding(), c, "settings")
    assert again.from_cache and again.dataset["text"] == first.dataset["text"]


def test_hub_cache_key_is_unchanged(tmp_path, monkeypatch):
    """A hub split's key is the datasets fingerprint of the loaded split as before issue 12 (this value was
    computed with the code before it); fixed paths, as the fingerprint hashes the arrow files' paths."""
    import shutil

    import datasets

    from ctc_tui.runner.data import cache_key

    base = Path("/tmp/ctc-tui-hub-pin")
    shutil.rmtree(base, ignore_errors=True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", base / "hf")
    try:
        clips = [(write_audio(base / "src" / f"{i}.flac", 0.4, 22050), f"WORD {i}") for i in range(3)]
        _hub_style_parquet(base / "my_dataset" / "data", "train", clips)
        for f in (base / "my_dataset" / "data").iterdir():
            os.utime(f, ns=(1_700_000_000_000_000_000,) * 2)
        raw = load_raw_split(cfg(source="hub", dataset_name=str(base / "my_dataset")), "train")
        assert (raw.fingerprint, cache_key(raw, "s", 16000, "train")) == (
            "63c71a89f0d8a2e0",
            "c6cf41c92378c6b19ac2",
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_two_dimensional_features_keep_their_shape(tmp_path):
    """Extractors of frames x features (w2v-BERT's input_features) are stored as nested lists."""
    make_librispeech(tmp_path, "train", rate=16000, speakers=1, per_chapter=3)
    c = cfg(source="librispeech", dataset_dir=str(tmp_path))

    class _Frames(_FE):
        model_input_names = ["input_features"]

        def __call__(self, samples, sampling_rate):
            frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)[:, :4]
            return type("Out", (), {"input_features": [frames]})()

    out = preprocess(load_raw_split(c, "train"), "train", make_normaliser(None), _Tok(), _Frames(), c, "2d")
    first = np.asarray(out.dataset.with_format("numpy")[0]["input_features"])
    assert first.shape == (50, 4)  # 0.5 s at 16 kHz in frames of 160
