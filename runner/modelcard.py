"""The model card (``README.md``) of a packaged model: Hugging Face's YAML front matter (language,
license, tags, metrics and a ``model-index`` with the WERs), then what the model is, the data it learned
from, its evaluation (greedy and with the LM, from ``RUN_DIR/eval/*.json``), the preset, the commands that
reproduce it and the software that made it. Pure text from facts gathered by ``ctc_tui.runner.package``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

TAGS = ("automatic-speech-recognition", "ctc", "ctc-tui")


@dataclass
class DataFacts:
    """The training data as the run read it."""

    source: str
    location: str  # the folder (local sources) or hub dataset name / config
    train_split: str
    train_clips: int | None
    train_hours: float | None


@dataclass
class CardFacts:
    """Everything the card says, gathered from the run dir."""

    name: str  # the folder's name (the model's name in model-index)
    architecture: str  # e.g. Wav2Vec2ForCTC
    origin: str  # what the weights are: "the final model", "checkpoint-400", "the average of ..."
    preset_yaml: str
    data: DataFacts
    results: list[dict]  # RUN_DIR/eval/<split>.json, as ctc-tui eval wrote them
    commands: list[str]  # the commands that reproduce the folder, in order
    versions: dict[str, dict[str, str | None]]  # package -> {"trained": v, "packaged": v}
    language: str | None = None
    lm: dict | None = None  # order, vocabulary, alpha, beta, tuned_on, model (None: no LM packaged)
    notes: list[str] = field(default_factory=list)


def _percent(value: float) -> float:
    return round(100.0 * value, 2)


def front_matter(facts: CardFacts) -> dict:
    """The card's YAML metadata (Hugging Face's model-card fields)."""
    meta: dict = {"language": [facts.language] if facts.language else ["und"], "license": "other"}
    meta.update(tags=list(TAGS), metrics=["wer", "cer"], pipeline_tag="automatic-speech-recognition")
    results = []
    for r in facts.results:
        metrics = [{"type": "wer", "value": _percent(r["wer"]), "name": "WER (greedy)"}]
        metrics.append({"type": "cer", "value": _percent(r["cer"]), "name": "CER (greedy)"})
        if "wer_lm" in r:
            metrics.append({"type": "wer", "value": _percent(r["wer_lm"]), "name": "WER (with LM)"})
            metrics.append({"type": "cer", "value": _percent(r["cer_lm"]), "name": "CER (with LM)"})
        results.append(
            {
                "task": {"type": "automatic-speech-recognition", "name": "Speech recognition"},
                "dataset": {"type": facts.data.source, "name": facts.data.location, "split": r["split"]},
                "metrics": metrics,
            }
        )
    if results:
        meta["model-index"] = [{"name": facts.name, "results": results}]
    return meta


def eval_table(results: list[dict]) -> list[str]:
    """The evaluation as a Markdown table (WER and CER in %)."""
    if not results:
        return ["No evaluation yet: `ctc-tui eval RUN_DIR [--lm]` scores the run, then package again."]
    with_lm = any("wer_lm" in r for r in results)
    head = ["split", "clips", "hours", "WER %", "CER %"] + (
        ["WER % with LM", "CER % with LM", "alpha", "beta"] if with_lm else []
    )
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in results:
        row = [
            r["split"],
            str(r["clips"]),
            f"{r['hours']:.3f}",
            f"{100 * r['wer']:.2f}",
            f"{100 * r['cer']:.2f}",
        ]
        if with_lm:
            row += (
                [f"{100 * r['wer_lm']:.2f}", f"{100 * r['cer_lm']:.2f}", f"{r['alpha']:g}", f"{r['beta']:g}"]
                if "wer_lm" in r
                else ["", "", "", ""]
            )
        rows.append("| " + " | ".join(row) + " |")
    models = sorted({str(r.get("model", "final")) for r in results})
    rows += ["", f"Scored model: {', '.join(models)} (`ctc-tui eval`; `final` is the run's final model)."]
    return rows


def _data_lines(data: DataFacts) -> list[str]:
    clips = "unknown" if data.train_clips is None else str(data.train_clips)
    hours = "unknown" if data.train_hours is None else f"{data.train_hours:.3f}"
    return [
        "| source | location | train split | clips | hours |",
        "| --- | --- | --- | --- | --- |",
        f"| {data.source} | `{data.location}` | {data.train_split} | {clips} | {hours} |",
    ]


def _lm_lines(lm: dict | None) -> list[str]:
    if lm is None:
        return ["No language model: the pipeline decodes greedily (best token per frame)."]
    return [
        f"A word {lm.get('order', '?')}-gram language model (interpolated modified Kneser-Ney, "
        f"{lm.get('vocabulary', '?')} words) of the training transcripts, in `language_model/` as "
        'pyctcdecode reads it; `pipeline("automatic-speech-recognition", model=...)` decodes with it '
        "when `pyctcdecode` and `kenlm` are installed.",
        f"Weights alpha {lm['alpha']:g}, beta {lm['beta']:g}, tuned by `ctc-tui eval --lm` on the "
        f"'{lm.get('tuned_on', '?')}' split for {lm.get('model', '?')}.",
    ]


def _versions(versions: dict[str, dict[str, str | None]]) -> list[str]:
    rows = ["| package | trained with | packaged with |", "| --- | --- | --- |"]
    for name, seen in versions.items():
        if seen.get("trained") or seen.get("packaged"):
            rows.append(f"| {name} | {seen.get('trained') or '-'} | {seen.get('packaged') or '-'} |")
    return rows


USAGE = [
    "```python",
    "from transformers import pipeline",
    "",
    'asr = pipeline("automatic-speech-recognition", model="PATH_OR_REPO_ID")',
    'print(asr("speech.wav")["text"])',
    "```",
]


def _reproduce(facts: CardFacts) -> list[str]:
    return [
        "The preset (`ctc-tui-preset.yaml` in this folder), then:",
        "",
        "```bash",
        *facts.commands,
        "```",
        "",
        "```yaml",
        facts.preset_yaml.rstrip(),
        "```",
    ]


def render(facts: CardFacts) -> str:
    """The whole README.md."""
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True).rstrip()
    lines = [
        "---",
        meta,
        "---",
        "",
        f"# {facts.name}",
        "",
        f"A {facts.architecture} CTC speech recognizer fine-tuned with ctc-tui; these weights are "
        f"{facts.origin}. The license above is a placeholder: set it to what the data and base model allow.",
        "",
        *USAGE,
        "",
        "## Data",
        "",
        *_data_lines(facts.data),
        "",
        "## Evaluation",
        "",
        *eval_table(facts.results),
        "",
        "## Language model",
        "",
        *_lm_lines(facts.lm),
        "",
        "## Reproduce",
        "",
        *_reproduce(facts),
        "",
        "## Software",
        "",
        *_versions(facts.versions),
    ]
    if facts.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in facts.notes)]
    return "\n".join(lines) + "\n"
