"""``python tests/integration/package_check.py RUN_DIR WITH_LM AVERAGED CLIPS...``: what a user of the
packaged folders sees, next to what ctc-tui computes itself; prints one JSON object for
test_package.py to judge. Run in a child process, as a user's script would load the folders: plain
``transformers.pipeline`` on each folder, nothing of ctc-tui in between.

For each clip: the pipeline's text and its model's logits for both folders; ctc-tui's own logits (the
run's final model, loaded as ``ctc-tui eval`` loads it), its greedy transcript, its beam search with the
run's LM and tuned weights, and pyctcdecode's decoding of ctc-tui's logits by the pipeline's own decoder;
and the logits of the average of the run's last two checkpoints, averaged here parameter by parameter
(independently of ``ctc_tui.runner.averaging``), with their greedy transcript.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
from transformers import AutoModelForCTC, pipeline

from ctc_tui.core.ngram import read_arpa
from ctc_tui.runner.decode import LmWeights, Vocab, beam_search, greedy, log_softmax
from ctc_tui.runner.load import load_trained


def averaged_model(run_dir: Path) -> torch.nn.Module:
    """checkpoint-12 with every floating-point parameter replaced by its mean over checkpoints 6 and 12."""
    older = AutoModelForCTC.from_pretrained(str(run_dir / "checkpoint-6")).eval()
    newer = AutoModelForCTC.from_pretrained(str(run_dir / "checkpoint-12")).eval()
    params = dict(older.named_parameters())
    with torch.no_grad():
        for name, value in newer.named_parameters():
            if value.is_floating_point():
                value.copy_(((value.double() + params[name].double()) / 2).to(value.dtype))
    return newer


def main(run_dir: Path, with_lm: Path, averaged: Path, clips: list[str]) -> dict:
    trained = load_trained(run_dir)
    features = trained.processor.feature_extractor
    vocab = Vocab.from_tokenizer(trained.processor.tokenizer)
    tuned = json.loads((run_dir / "lm" / "weights.json").read_text())
    lm = read_arpa((run_dir / "lm" / "lm.arpa").read_text().splitlines())
    reference_average = averaged_model(run_dir)
    asr_lm = pipeline("automatic-speech-recognition", model=str(with_lm))
    asr_avg = pipeline("automatic-speech-recognition", model=str(averaged))
    decoder_lm = asr_lm.decoder.model_container[asr_lm.decoder._model_key]
    out: dict = {
        "types": [asr_lm.type, asr_avg.type],
        "decoder": {
            "alpha": decoder_lm.alpha,
            "beta": decoder_lm.beta,
            "labels": asr_lm.decoder._alphabet.labels,
        },
        "tuned": [tuned["alpha"], tuned["beta"]],
        "vocab": vocab.tokens,
        "clips": [],
    }
    for clip in clips:
        audio, rate = soundfile.read(clip, dtype="float32")
        inputs = features(audio, sampling_rate=rate, return_tensors="pt")
        with torch.inference_mode():
            ours = trained.model(**inputs).logits[0].numpy()
            packaged = asr_lm.model(**inputs).logits[0].numpy()
            average_ours = reference_average(**inputs).logits[0].numpy()
            average_packaged = asr_avg.model(**inputs).logits[0].numpy()
        logprobs = log_softmax(ours)
        sample = {"raw": audio, "sampling_rate": rate}
        out["clips"].append(
            {
                "logits_diff": float(np.abs(ours - packaged).max()),
                "average_logits_diff": float(np.abs(average_ours - average_packaged).max()),
                "average_moved": float(np.abs(average_ours - ours).max()),
                "pipeline_lm": asr_lm(dict(sample))["text"],
                "decoder_on_ours": asr_lm.decoder.decode_beams(ours)[0][0],  # as the pipeline calls it
                "ctc_tui_lm": beam_search(logprobs, vocab, lm, LmWeights(tuned["alpha"], tuned["beta"])),
                "pipeline_average": asr_avg(dict(sample))["text"],
                "ctc_tui_average_greedy": greedy(log_softmax(average_ours), vocab),
                "ctc_tui_greedy": greedy(logprobs, vocab),
                "greedy_of_packaged": asr_lm.tokenizer.decode(packaged.argmax(-1)),
            }
        )
    return out


if __name__ == "__main__":
    run, lm_folder, average_folder, *audio_files = sys.argv[1:]
    print(json.dumps(main(Path(run), Path(lm_folder), Path(average_folder), audio_files)))
