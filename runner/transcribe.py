"""``python -m ctc_tui.runner.transcribe RUN_DIR AUDIO...``: greedy CTC transcripts from a trained run dir.

Prints one ``path<TAB>transcript`` line per file. Any sample rate or channel count is accepted (the
audio is down-mixed and resampled to the model's rate).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctc_tui.runner import audio
from ctc_tui.runner.load import has_trained_model, load_trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctc-tui transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished run dir (or any folder with a CTC model and processor)")
    parser.add_argument("audio", nargs="+", help="audio files (flac, wav, ogg, ...)")
    args = parser.parse_args(argv)

    run_dir = Path(args.run_dir)
    if not has_trained_model(run_dir):
        print(
            f"error: {run_dir} holds no trained model (config.json + weights); train one with ctc-tui run",
            file=sys.stderr,
        )
        return 2
    import torch

    trained = load_trained(run_dir)
    processor, model = trained.processor, trained.model
    fe = processor.feature_extractor
    code = 0
    for path in args.audio:
        try:
            samples, _ = audio.load(path, fe.sampling_rate)
        except audio.AudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
            continue
        inputs = fe(samples, sampling_rate=fe.sampling_rate, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs).logits
        text = processor.tokenizer.decode(logits.argmax(dim=-1)[0])
        print(f"{path}\t{text}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
