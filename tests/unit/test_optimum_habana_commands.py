"""Today's optimum-habana commands: every run_speech_recognition_ctc.py command of its current
speech-recognition README (tests/data/optimum-habana/, verbatim) imports, validates and round-trips
through show-command; ``gaudi_fused_sdpa`` runs on HPU as itself and elsewhere as ``sdpa``."""

from __future__ import annotations

import shlex

import pytest

from ctc_tui.check import check_gaudi_settings
from ctc_tui.core.preset import load_preset
from ctc_tui.core.reference_flags import split_flags
from ctc_tui.launchers.reference import gaudi_spawn_command, parse_command
from ctc_tui.runner.model import attention_implementation
from tests.conftest import REPO

COMMANDS = sorted((REPO / "tests" / "data" / "optimum-habana").glob("ctc-*.sh"))
#: What each README command asks for: launcher, cards, attention kernel, train or evaluate only.
EXPECTED = {
    "ctc-single-hpu.sh": ("single", 1, "gaudi_fused_sdpa", True),
    "ctc-mpi-8.sh": ("mpi", 8, "gaudi_fused_sdpa", True),
    "ctc-deepspeed-8.sh": ("deepspeed", 8, "gaudi_fused_sdpa", True),
    "ctc-inference-1.sh": ("single", 1, None, False),
}
GAUDI_SPAWN = {"world_size", "use_mpi", "use_deepspeed"}  # gaudi_spawn.py's own, not the script's


def script_flags(tokens: list[str]) -> dict:
    at = next(i for i, t in enumerate(tokens) if t.endswith("run_speech_recognition_ctc.py"))
    return split_flags(tokens[at + 1 :])[0]


def same_value(given, shown) -> bool:
    if given is True:  # a bare switch
        return shown == "True"
    if isinstance(given, list):  # chars_to_ignore: the same characters
        return set(given) == set(shown if isinstance(shown, list) else [shown])
    try:
        return float(given) == float(shown)
    except (TypeError, ValueError):
        return str(given) == str(shown)


def test_the_fixtures_are_the_readmes_four_ctc_commands():
    assert [p.name for p in COMMANDS] == sorted(EXPECTED)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.stem)
def test_each_command_imports_to_the_run_it_describes(path):
    preset = parse_command(path.read_text())
    launcher, world, attention, trains = EXPECTED[path.name]
    assert (preset.launch.launcher, preset.launch.world_size) == (launcher, world)
    assert preset.model.attn_implementation == attention
    assert preset.training.do_train is trains and preset.training.do_eval is True
    assert preset.gaudi.use_habana and preset.gaudi.use_lazy_mode
    assert preset.model.model_name_or_path == "facebook/wav2vec2-large-lv60"
    assert (preset.data.dataset_config_name, preset.data.train_split_name) == ("clean", "train.100")


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.stem)
def test_show_command_gives_back_every_flag_and_imports_to_the_same_preset(path):
    text = path.read_text()
    preset = parse_command(text)
    given = script_flags(shlex.split(text.replace("\\\n", " "), comments=True))
    shown = gaudi_spawn_command(preset)
    back = script_flags(shown)
    for name, value in given.items():
        if name not in GAUDI_SPAWN:
            assert same_value(value, back[name]), (name, value, back[name])
    assert parse_command(shlex.join(shown)) == preset


def test_the_seeds_older_command_still_imports():
    seed = load_preset(REPO / "presets" / "librispeech-100h-2card-mpi.yaml")
    assert seed.model.attn_implementation == "sdpa"


def test_gaudi_fused_sdpa_passes_through_on_hpu_and_is_sdpa_elsewhere(caplog):
    on_hpu = parse_command(COMMANDS[0].read_text())
    assert attention_implementation(on_hpu) == "gaudi_fused_sdpa"
    off_hpu = on_hpu.model_copy(deep=True)
    off_hpu.gaudi.use_habana = False
    off_hpu.gaudi.use_hpu_graphs_for_training = off_hpu.gaudi.use_hpu_graphs_for_inference = False
    with caplog.at_level("WARNING"):
        assert attention_implementation(off_hpu) == "sdpa"
    assert "exists only on Gaudi" in caplog.text


def test_the_pre_flight_check_says_so_off_hpu_and_not_on_it():
    on_hpu = parse_command(COMMANDS[0].read_text())
    assert not [f for f in check_gaudi_settings(on_hpu) if f.key == "model.attn_implementation"]
    off_hpu = on_hpu.model_copy(deep=True)
    off_hpu.gaudi.use_habana = False
    (finding,) = [f for f in check_gaudi_settings(off_hpu) if f.key == "model.attn_implementation"]
    assert finding.level == "warning" and "sdpa" in finding.message
