"""Safe YAML: what a hostile or broken preset file gets instead of a traceback."""

import pytest

from ctc_tui.core.yamlio import MAX_DEPTH, YamlError, load_yaml_text, parse_scalar


@pytest.mark.parametrize(
    "text",
    [
        "model:\n  config_overrides: " + "[" * 600 + "]" * 600 + "\n",
        "a: " + "{b: " * 600 + "1" + "}" * 600 + "\n",
        "x:\n" + "".join("  " * i + "- \n" for i in range(1, 700)),
    ],
)
def test_deep_nesting_is_a_yaml_error_with_its_line(text):
    with pytest.raises(YamlError, match="nested") as caught:
        load_yaml_text(text)
    assert caught.value.line is not None and caught.value.line >= 1


def test_nesting_a_preset_could_use_still_loads():
    doc = load_yaml_text("a:\n  b: " + "[" * (MAX_DEPTH - 4) + "1" + "]" * (MAX_DEPTH - 4) + "\n")
    value = doc.data["a"]["b"]
    for _ in range(MAX_DEPTH - 5):
        value = value[0]
    assert value == [1]


def test_a_deep_override_value_is_refused_too():
    with pytest.raises(YamlError, match="nested"):
        parse_scalar("[" * 2000 + "]" * 2000)


def test_lines_are_recorded_for_nested_keys():
    doc = load_yaml_text("model:\n  architecture: wav2vec2-tiny\ntraining:\n  max_steps: 5\n")
    assert doc.line_of(("training", "max_steps")) == 4
    assert doc.line_of(("model", "architecture")) == 2


# -- the output_dir template ---------------------------------------------------------------------

from ctc_tui.core.preset import fill_placeholders  # noqa: E402


def test_placeholders_are_filled_by_name_only():
    values = {"preset": "demo", "timestamp": "20261130-060000"}
    assert fill_placeholders("runs/{preset}-{timestamp}", values) == "runs/demo-20261130-060000"
    assert fill_placeholders("runs/{{literal}}/{preset}", values) == "runs/{literal}/demo"


@pytest.mark.parametrize(
    "template",
    [
        "runs/{preset.__class__}",
        "runs/{timestamp:>999999999}",
        "runs/{0}",
        "runs/{preset[0]}",
        "runs/{nope}",
        "runs/{",
        "runs/}",
    ],
)
def test_anything_but_a_known_name_is_refused(template):
    with pytest.raises(ValueError):
        fill_placeholders(template, {"preset": "demo", "timestamp": "t"})
