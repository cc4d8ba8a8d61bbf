"""Presets on the command line: ``ctc-tui validate`` exit codes and messages, ``ctc-tui presets``, the
schema."""

from __future__ import annotations

import json
from pathlib import Path

from ctc_tui.core.preset import (
    json_schema,
    known_keys,
)
from tests.conftest import REPO, run_cli


def write(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_schema_covers_every_key():
    schema = json_schema()
    text = json.dumps(schema)
    for key in known_keys():
        assert key.split(".")[1] in text
    out = run_cli("schema")
    assert out.returncode == 0 and json.loads(out.stdout)["title"] == "ctc-tui preset"


def test_cli_validate_exit_codes_and_no_traceback(tmp_path):
    ok = run_cli("validate", str(REPO / "presets" / "librispeech-100h-2card-mpi.yaml"))
    assert ok.returncode == 0 and "valid" in ok.stdout
    for content in (b"", b"\x00\xff", b"- 1\n", b"training:\n  learning_rat: 1\n", b"{{{{"):
        bad = run_cli("validate", str(write(tmp_path, content)))
        assert bad.returncode == 2, bad
        assert "Traceback" not in bad.stderr and bad.stderr.strip()
    missing = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    folder = run_cli("validate", str(tmp_path))
    assert folder.returncode == 2 and "directory" in folder.stderr


def test_cli_presets_lists_shipped_presets():
    out = run_cli("presets")
    assert out.returncode == 0
    for name in ("demo-cpu", "librispeech-100h-2card-mpi", "librispeech-100h-8card-deepspeed"):
        assert name in out.stdout
