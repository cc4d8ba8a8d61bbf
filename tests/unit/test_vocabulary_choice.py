"""Starting from a model that already has a vocabulary (model.vocabulary auto/keep/new), dropping clips
with rare characters, and the metric plan of text written without spaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctc_tui.core.preset import load_preset
from ctc_tui.core.sources import RawSplit
from ctc_tui.runner import backends
from ctc_tui.runner.evaluate import plan_metrics
from ctc_tui.runner.model import build, choose_tokenizer, reinitialise_head
from ctc_tui.runner.text import build_vocab, drop_rare_clips, normaliser_for

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "presets" / "demo-cpu.yaml"
OLD_TEXT = ["abc cab", "bac"]  # the saved model's vocabulary: a b c | [UNK] [PAD]


def preset(*overrides: str):
    return load_preset(DEMO, list(overrides))


@pytest.fixture(scope="module")
def ctc_folder(tmp_path_factory) -> Path:
    """A fine-tuned-looking CTC model folder (config, weights, vocab.json, processor) made from the tiny
    config: what transformers' save_pretrained writes."""
    from transformers import Wav2Vec2Processor

    folder = tmp_path_factory.mktemp("ctc-model")
    base = preset()
    tokenizer = choose_tokenizer(base, OLD_TEXT, folder).tokenizer
    built = build(base, tokenizer, None)
    built.model.save_pretrained(str(folder))
    Wav2Vec2Processor(feature_extractor=built.feature_extractor, tokenizer=tokenizer).save_pretrained(
        str(folder)
    )
    return folder


def from_folder(folder: Path, *overrides: str):
    return preset("model.architecture=null", f"model.model_name_or_path={folder}", *overrides)


def test_auto_keeps_a_vocabulary_the_text_fits(ctc_folder, tmp_path):
    choice = choose_tokenizer(from_folder(ctc_folder), ["cab abc"], tmp_path)
    assert choice.vocab is None and not choice.reinit_head
    saved = json.loads((ctc_folder / "vocab.json").read_text())
    assert saved.items() <= choice.tokenizer.get_vocab().items()
    config = json.loads((ctc_folder / "config.json").read_text())
    assert choice.note == f"kept the vocabulary of {ctc_folder} ({config['vocab_size']} tokens)"
    assert len(choice.tokenizer) == config["vocab_size"]  # the CTC head fits: nothing re-initialised


def test_auto_builds_a_new_vocabulary_when_characters_do_not_fit_and_says_which(ctc_folder, tmp_path):
    choice = choose_tokenizer(from_folder(ctc_folder), ["äbc ßa", "ä"], tmp_path)
    assert choice.reinit_head and choice.vocab is not None and {"ä", "ß"} <= choice.vocab.keys()
    assert "ä 2, ß 1" in choice.note and "lm_head" in choice.note and "re-initialised" in choice.note
    assert json.loads((tmp_path / "vocab.json").read_text()) == choice.vocab


def test_keep_keeps_it_anyway_and_names_what_becomes_unknown(ctc_folder, tmp_path):
    choice = choose_tokenizer(from_folder(ctc_folder, "model.vocabulary=keep"), ["äbc"], tmp_path)
    assert choice.vocab is None and not choice.reinit_head
    assert "become [UNK]: ä 1" in choice.note


def test_new_always_builds_one(ctc_folder, tmp_path):
    choice = choose_tokenizer(from_folder(ctc_folder, "model.vocabulary=new"), ["abc"], tmp_path)
    assert choice.reinit_head and "model.vocabulary=new" in choice.note


def test_upper_case_vocabulary_gets_the_do_lower_case_hint(tmp_path):
    folder = tmp_path / "upper"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(build_vocab(["ABC"])))
    choice_note = choose_tokenizer(from_folder(folder, "model.vocabulary=new"), ["abc"], tmp_path / "v").note
    assert "set data.do_lower_case=false" in choice_note


def test_a_new_vocabulary_of_the_same_size_still_gets_a_fresh_head(ctc_folder, tmp_path):
    """The new vocabulary has as many tokens as the old one, so transformers would keep the old head's
    rows (which meant other characters): the head is re-initialised explicitly."""
    loaded = from_folder(ctc_folder)
    choice = choose_tokenizer(loaded, ["xyz zyx"], tmp_path)  # x y z | [UNK] [PAD]: 6, as before
    assert choice.reinit_head and len(choice.vocab) == 6
    kept = build(loaded, choice.tokenizer, choice.vocab, reinit_head=False).model.lm_head.weight
    fresh = build(loaded, choice.tokenizer, choice.vocab, reinit_head=True).model.lm_head.weight
    assert kept.shape == fresh.shape and not torch.allclose(kept, fresh)


def test_reinitialise_head_uses_the_models_initialiser(tmp_path):
    choice = choose_tokenizer(preset(), ["abc"], tmp_path)
    model = build(preset(), choice.tokenizer, choice.vocab).model
    with torch.no_grad():
        model.lm_head.weight.fill_(7.0)
        model.lm_head.bias.fill_(7.0)
    reinitialise_head(model)
    weight, bias = model.lm_head.weight.detach(), model.lm_head.bias.detach()
    assert float(weight.abs().max()) < 1.0 and float(bias.abs().max()) == 0.0


def test_drop_rare_clips_removes_clips_with_rare_characters_and_says_so():
    split = RawSplit(["a.wav", "b.wav", "c.wav", "d.wav"], ["ja ja", "ja", "ja жa", "ja 😀"], "fp")
    kept, message = drop_rare_clips(split, normaliser_for(preset().data), threshold=2)
    assert kept.text == ["ja ja", "ja"] and kept.audio == ["a.wav", "b.wav"] and kept.fingerprint != "fp"
    assert "dropped 2 training clip(s)" in message and "CYRILLIC SMALL LETTER ZHE" in message
    same, nothing = drop_rare_clips(split, normaliser_for(preset().data), threshold=1)
    assert same is split and nothing == ""


def test_metric_plan_puts_cer_first_for_text_without_spaces():
    plan = plan_metrics(preset(), spaced=False)
    assert (plan.primary, plan.best, plan.computed) == ("cer", "cer", ("cer", "wer"))
    assert plan_metrics(preset(), spaced=True).computed == ("wer", "cer")
    only_wer = plan_metrics(preset("data.eval_metrics=[wer]"), spaced=False)
    assert only_wer.computed == ("cer", "wer")  # the primary metric is always computed
    chosen = plan_metrics(preset("training.metric_for_best_model=loss"), spaced=False)
    assert chosen.best == "loss" and chosen.primary == "cer"


def test_best_model_arguments_follow_the_plan():
    args = backends.best_model_arguments(preset(), "cer")
    assert args == {
        "metric_for_best_model": "cer",
        "greater_is_better": False,
        "load_best_model_at_end": False,
    }
    assert backends.best_model_arguments(preset("training.do_eval=false"), "cer") == {}


def test_load_best_model_at_end_needs_matching_strategies():
    from ctc_tui.core.problems import PresetError

    with pytest.raises(PresetError, match="load_best_model_at_end needs eval_strategy and save_strategy"):
        preset("training.load_best_model_at_end=true", "training.save_strategy=epoch")
    assert preset("training.load_best_model_at_end=true").training.load_best_model_at_end
