"""Preset validation: every shipped preset is valid; every broken file gets all its problems, with
lines and hints, and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctc_tui.core.preset import (
    Preset,
    PresetError,
    apply_overrides,
    known_keys,
    load_preset,
    validate_data,
)
from ctc_tui.core.shipped import list_presets
from ctc_tui.core.yamlio import load_yaml_text
from tests.conftest import REPO

SHIPPED = sorted((REPO / "presets").glob("*.yaml"))


def write(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_presets_are_valid_and_start_with_a_header(path):
    preset = load_preset(path)
    assert isinstance(preset, Preset)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# "), "every shipped preset starts with a comment header"
    assert "ctc-tui run" in path.read_text().split("\n\n")[0] or "ctc-tui run" in "\n".join(
        line for line in path.read_text().splitlines() if line.startswith("#")
    )


def test_required_presets_are_shipped():
    names = {p.name for p in list_presets()}
    assert {
        "demo-cpu",
        "librispeech-100h-2card-mpi",
        "librispeech-100h-8card-mpi",
        "librispeech-100h-8card-deepspeed",
    } <= names


def test_seed_preset_carries_the_seed_values():
    p = load_preset(REPO / "presets" / "librispeech-100h-2card-mpi.yaml")
    assert p.model.model_name_or_path == "facebook/wav2vec2-large-lv60"
    assert (p.data.dataset_name, p.data.dataset_config_name) == ("librispeech_asr", "clean")
    assert (p.data.train_split_name, p.data.eval_split_name) == ("train.100", "validation")
    assert p.data.preprocessing_num_workers == 64 and p.training.dataloader_num_workers == 8
    assert p.training.per_device_train_batch_size == 4 and p.training.per_device_eval_batch_size == 8
    assert p.training.learning_rate == 3e-4 and p.training.warmup_steps == 500
    assert p.training.num_train_epochs == 1 and p.training.overwrite_output_dir
    assert p.training.bf16 and p.gaudi.sdp_on_bf16 and p.gaudi.use_habana and p.gaudi.use_lazy_mode
    assert p.gaudi.use_hpu_graphs_for_training and p.gaudi.use_hpu_graphs_for_inference
    assert p.gaudi.gaudi_config_name == "Habana/wav2vec2" and p.training.throughput_warmup_steps == 3
    assert (
        p.model.attn_implementation == "sdpa" and p.model.layerdrop == 0.0 and p.model.freeze_feature_encoder
    )
    assert (p.launch.launcher, p.launch.world_size) == ("mpi", 2)
    # The seed's list, literal: the hyphen is listed (removed), the apostrophe is not (kept).
    assert "-" in p.data.chars_to_ignore and "'" not in p.data.chars_to_ignore
    for name in ("librispeech-100h-8card-mpi", "librispeech-100h-8card-deepspeed"):
        q = load_preset(REPO / "presets" / f"{name}.yaml")
        assert q.launch.world_size == 8
        assert q.model_dump(exclude={"launch"}) == p.model_dump(exclude={"launch"})
    assert (
        load_preset(REPO / "presets" / "librispeech-100h-8card-deepspeed.yaml").launch.launcher == "deepspeed"
    )


def test_unknown_key_gets_line_and_did_you_mean(tmp_path):
    path = write(
        tmp_path,
        "data:\n  source: hub\n  dataset_name: x\ntraining:\n  learning_rat: 0.1\n  warmup_step: 3\n",
    )
    with pytest.raises(PresetError) as info:
        load_preset(path)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].line == 5 and "training.learning_rate" in problems[0].message
    assert problems[1].line == 6 and "training.warmup_steps" in problems[1].message


def test_key_in_wrong_section_is_pointed_to_the_right_one(tmp_path):
    path = write(tmp_path, "data:\n  dataset_name: x\n  learning_rate: 0.1\nper_device_train_batch_size: 4\n")
    with pytest.raises(PresetError) as info:
        load_preset(path)
    text = info.value.render()
    assert "did you mean 'training.learning_rate'" in text
    assert "training.per_device_train_batch_size" in text


def test_every_problem_reported_at_once_with_lines(tmp_path):
    path = write(
        tmp_path,
        (
            "data:\n  dataset_name: x\n  max_duration_in_seconds: -3\n"
            "training:\n  per_device_train_batch_size: -4\n  learning_rate: fast\n  bf16: maybe\n"
            "launch:\n  launcher: slurmish\n  world_size: 0\n"
        ),
    )
    with pytest.raises(PresetError) as info:
        load_preset(path)
    by_key = {p.key: p for p in info.value.problems}
    assert set(by_key) == {
        "data.max_duration_in_seconds",
        "training.per_device_train_batch_size",
        "training.learning_rate",
        "training.bf16",
        "launch.launcher",
        "launch.world_size",
    }
    assert by_key["training.per_device_train_batch_size"].line == 5
    assert "must be >= 1" in by_key["training.per_device_train_batch_size"].message
    assert "expected a number" in by_key["training.learning_rate"].message
    assert "'mpi'" in by_key["launch.launcher"].message
    assert by_key["launch.world_size"].line == 10


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"   \n# only a comment\n", "empty"),
        (b"\x00\x01\x02binary\xff", "binary"),
        (b"\xff\xfe\xfa not utf8", "UTF-8"),
        (b"data: [unclosed\n", "not valid YAML"),
        (b"- a\n- b\n", "not a list"),
        (b"just a string", "not a string"),
        (b"42", "not a number"),
        (b"a: 1\n---\nb: 2\n", "several YAML documents"),
        (b"data: !!python/object:os.system {}\n", "not valid YAML"),
        (b"? [a, b]\n: 1\n", "not valid YAML"),
    ],
)
def test_broken_files_give_one_clear_problem(tmp_path, content, expected):
    with pytest.raises(PresetError) as info:
        load_preset(write(tmp_path, content))
    assert expected in info.value.render()


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(
            f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    with pytest.raises(PresetError) as info:
        load_preset(write(tmp_path, "\n".join(lines) + "\n"))
    assert "too many values" in info.value.render()


def test_overrides_are_validated_like_the_file(tmp_path):
    path = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"
    p = load_preset(
        path,
        [
            "training.max_steps=60",
            "data.source=librispeech",
            "data.dataset_dir=/data/ls",
            "data.chars_to_ignore=[',', '.']",
        ],
    )
    assert p.training.max_steps == 60 and p.data.source == "librispeech"
    assert p.data.chars_to_ignore == [",", "."]
    with pytest.raises(PresetError) as info:
        load_preset(path, ["training.max_step=60", "nodots", "launch.world_size=-1"])
    text = info.value.render()
    assert "did you mean 'training.max_steps'" in text
    assert "section.key=value" in text
    assert "launch.world_size" in text and "[launch.world_size=-1]" in text


def test_chars_to_ignore_accepts_a_string_and_splits_it():
    p = validate_data({"data": {"dataset_name": "x", "chars_to_ignore": ",.!-"}}, "t")
    assert p.data.chars_to_ignore == [",", ".", "!", "-"]
    p = validate_data({"data": {"dataset_name": "x", "chars_to_ignore": [",.", "!", " ", ","]}}, "t")
    assert p.data.chars_to_ignore == [",", ".", "!"]


def test_cross_field_rules():
    with pytest.raises(PresetError, match="use launcher mpi"):
        validate_data({"data": {"dataset_name": "x"}, "launch": {"world_size": 4}}, "t")
    with pytest.raises(PresetError, match="needs data.dataset_dir"):
        validate_data({"data": {"source": "librispeech"}}, "t")
    with pytest.raises(PresetError, match="contradict"):
        validate_data(
            {"data": {"dataset_name": "x"}, "gaudi": {"use_habana": True}, "training": {"use_cpu": True}}, "t"
        )


def test_round_trip_through_yaml_is_identical(tmp_path):
    p = load_preset(REPO / "presets" / "librispeech-100h-8card-deepspeed.yaml")
    again = load_preset(write(tmp_path, p.to_yaml(header="round trip")))
    assert again == p
    assert apply_overrides(p, []) == p


yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
section_names = st.sampled_from(["model", "data", "training", "gaudi", "launch", "other"])
field_names = st.sampled_from(sorted({k.split(".")[1] for k in known_keys()}) + ["bogus", ""])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        section_names, st.dictionaries(field_names, yaml_values, max_size=5) | yaml_values, max_size=5
    )
)
def test_fuzz_structures_only_ever_raise_preset_error(tmp_path, data):
    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        load_preset(write(tmp_path, text))
    except PresetError as exc:
        assert exc.problems and all(p.message for p in exc.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_bytes_only_ever_raise_preset_error(tmp_path, raw):
    try:
        load_preset(write(tmp_path, raw))
    except PresetError as exc:
        assert exc.problems


def test_line_numbers_follow_nested_keys():
    doc = load_yaml_text("a:\n  b:\n    c: 1\n  d: [1, 2]\n")
    assert doc.line_of(("a", "b", "c")) == 3
    assert doc.line_of(("a", "d", "1")) == 4
    assert doc.line_of(("a", "zzz")) == 1
