"""The LM half of a packaged model: the alphabet pyctcdecode reads from ctc-tui's vocabulary, the
``language_model/`` layout, and pyctcdecode (as transformers' pipeline loads it from the folder) decoding
hand-made logits to the same text as ctc-tui's own beam search with the same LM and weights."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from ctc_tui.core import ngram
from ctc_tui.runner import lmfiles
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, greedy

#: ctc-tui's built vocabulary for the demo's text (runner/text.py's order), with the tokenizer's added
#: <s> and </s> after it: the model has an output for each.
CHARS = ["'", "-", *"acdefghiklnoprstuvwxyz", "|"]
TOKENS = {c: i for i, c in enumerate(CHARS)} | {"[UNK]": len(CHARS), "[PAD]": len(CHARS) + 1}
TOKENS |= {"<s>": len(TOKENS), "</s>": len(TOKENS) + 1}
SENTENCES = ["three two one", "one two three", "three three two", "two three one", "three one"]


def labels() -> list[str]:
    return lmfiles.labels(TOKENS, len(TOKENS), "[PAD]", "|")


def test_labels_follow_the_ids_with_pyctcdecodes_substitutions():
    alphabet = labels()
    assert len(alphabet) == len(TOKENS)
    assert alphabet[TOKENS["[PAD]"]] == "" and alphabet[TOKENS["|"]] == " "
    assert alphabet[TOKENS["[UNK]"]] == lmfiles.UNK_LABEL and alphabet[TOKENS["a"]] == "a"
    assert alphabet[TOKENS["<s>"]] == "<s>" and alphabet[TOKENS["'"]] == "'"


def test_labels_refuse_a_vocabulary_that_does_not_cover_the_model():
    with pytest.raises(lmfiles.LmFilesError, match="no token for output id"):
        lmfiles.labels(TOKENS, len(TOKENS) + 2, "[PAD]", "|")
    with pytest.raises(lmfiles.LmFilesError, match="two tokens"):
        lmfiles.labels({"a": 0, " ": 1, "|": 2, "[PAD]": 3}, 4, "[PAD]", "|")


def test_transformers_finds_every_token_in_the_alphabet(tmp_path):
    """What Wav2Vec2ProcessorWithLM.from_pretrained checks before it accepts a decoder, with the
    tokenizer ctc-tui builds (its vocab.json; <s> and </s> added by the tokenizer itself)."""
    from pyctcdecode import Alphabet
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ProcessorWithLM

    vocab = {t: i for t, i in TOKENS.items() if t not in ("<s>", "</s>")}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]")
    assert tokenizer.get_vocab() == TOKENS

    class Decoder:
        _alphabet = Alphabet(labels(), False)

    assert Wav2Vec2ProcessorWithLM.get_missing_alphabet_tokens(Decoder, tokenizer) == set()


def test_attrs_restate_ctc_tui_weights_in_pyctcdecode_units():
    attrs = lmfiles.attrs(LmWeights(0.75, 2.0))
    assert set(attrs) == {"alpha", "beta", "unk_score_offset", "score_boundary"}  # exactly pyctcdecode's
    assert attrs["alpha"] == 0.75 and attrs["beta"] == 2.0 and attrs["score_boundary"] is True
    assert attrs["unk_score_offset"] * math.log(10) == pytest.approx(LmWeights().unk_offset)
    # alpha 0: no LM term at all in ctc-tui, so no unknown-word charge in pyctcdecode either
    assert lmfiles.attrs(LmWeights(0.0, 0.0))["unk_score_offset"] == 0.0


def make_run_lm(run_dir, weights: LmWeights | None):
    """A run dir's lm/ as ctc-tui lm build and eval --lm leave it."""
    model = ngram.estimate([s.split() for s in SENTENCES], 3)
    arpa = "\n".join(ngram.arpa_lines(model)) + "\n"
    lm_dir = run_dir / "lm"
    lm_dir.mkdir(parents=True)
    (lm_dir / "lm.arpa").write_text(arpa)
    (lm_dir / "unigrams.txt").write_text("one\nthree\ntwo\n")
    (lm_dir / "lm.json").write_text(json.dumps({"order": 3, "vocabulary": 3}))
    sha = hashlib.sha256(arpa.encode()).hexdigest()
    if weights is not None:
        tuned = {"alpha": weights.alpha, "beta": weights.beta, "arpa_sha256": sha, "tuned_on": "eval"}
        (lm_dir / "weights.json").write_text(json.dumps(tuned))
    return sha, ngram.read_arpa(arpa.splitlines())


def test_read_tuned_needs_weights_tuned_for_this_arpa(tmp_path):
    assert lmfiles.read_tuned(tmp_path, "") is None  # no LM at all
    sha, _ = make_run_lm(tmp_path, None)
    with pytest.raises(lmfiles.LmFilesError, match="ctc-tui eval .* --lm.*--no-lm"):
        lmfiles.read_tuned(tmp_path, sha)
    (tmp_path / "lm" / "weights.json").write_text(json.dumps({"alpha": 1, "beta": 1, "arpa_sha256": "old"}))
    with pytest.raises(lmfiles.LmFilesError, match="no alpha/beta tuned"):
        lmfiles.read_tuned(tmp_path, sha)
    (tmp_path / "lm" / "weights.json").write_text(json.dumps({"alpha": 1, "beta": 2, "arpa_sha256": sha}))
    tuned = lmfiles.read_tuned(tmp_path, sha)
    assert tuned.weights == LmWeights(1.0, 2.0) and tuned.info["order"] == 3


def frames(text: str, doubt: dict[int, float] | None = None) -> np.ndarray:
    """Log probabilities spelling ``text`` (a space: the delimiter), a blank between characters; at the
    character positions in ``doubt`` the character gets that probability and the blank the rest."""
    doubt = doubt or {}
    rows = []
    blank = TOKENS["[PAD]"]
    for position, char in enumerate(text):
        token = TOKENS["|" if char == " " else char]
        row = np.full(len(TOKENS), 1e-4)
        p = doubt.get(position, 0.97)
        row[token], row[blank] = p, 1.0 - p
        rows += [row / row.sum()]
        gap = np.full(len(TOKENS), 1e-4)
        gap[blank] = 1.0
        rows += [gap / gap.sum()]
    return np.log(np.array(rows))


@pytest.mark.parametrize("weights", [LmWeights(0.5, 1.0), LmWeights(1.5, 0.5), LmWeights(0.25, 0.0)])
def test_pyctcdecode_from_the_packaged_layout_decodes_as_ctc_tui(tmp_path, weights):
    from pyctcdecode import BeamSearchDecoderCTC

    sha, model = make_run_lm(tmp_path / "run", weights)
    tuned = lmfiles.read_tuned(tmp_path / "run", sha)
    out = tmp_path / "package"
    out.mkdir()
    (out / "config.json").write_text("{}")  # the model's files sit beside; load_from_dir reads past them
    lmfiles.write_alphabet(out, labels())
    lmfiles.write_language_model(out, tuned)
    assert sorted(p.name for p in (out / "language_model").iterdir()) == [
        "attrs.json",
        "lm.arpa",
        "unigrams.txt",
    ]

    decoder = BeamSearchDecoderCTC.load_from_dir(str(out))  # what the ASR pipeline calls on the folder
    vocab = Vocab([t for t, _ in sorted(TOKENS.items(), key=lambda kv: kv[1])], TOKENS["[PAD]"], TOKENS["|"])
    # "three" with a doubtful 'h' (greedy drops it: "tree", a word the LM never saw) and "two" whose 'w'
    # is doubtful ("to"); then plain words.
    cases = [
        frames("three two one", {1: 0.3}),
        frames("two three", {1: 0.4, 5: 0.35}),
        frames("one three two", {5: 0.45}),
        frames("three one"),
    ]
    greedy_texts = [greedy(lp, vocab) for lp in cases]
    assert greedy_texts[0] == "tree two one" and greedy_texts[1] == "to tree"
    for lp in cases:
        ours = beam_search(lp, vocab, model, weights)
        theirs = decoder.decode_beams(lp)[0][0]  # what the ASR pipeline calls
        assert theirs == ours
    # the LM is what fixed them (not a test that passes whatever the weights)
    assert [decoder.decode_beams(lp)[0][0] for lp in cases[:2]] == ["three two one", "two three"]
