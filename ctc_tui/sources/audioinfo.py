"""Sample rate and length of an audio file from its header, without decoding it.

FLAC (the STREAMINFO block) and WAV are parsed here with the standard library; any other format is
read with soundfile when it is installed (optional on a login node). Used by the wizard's data check
and ``ctc-tui check``.
"""

from __future__ import annotations

import struct
import wave


def audio_info(path: str) -> tuple[int, int] | None:
    """(sample rate, frames) from the file header, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] == b"fLaC":
                return flac_info(head)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                with wave.open(path, "rb") as w:
                    return w.getframerate(), w.getnframes()
    except (OSError, wave.Error, EOFError, struct.error):
        return None
    try:
        import soundfile  # deferred: optional on a login node, and only for formats other than FLAC/WAV

        info = soundfile.info(path)
        return int(info.samplerate), int(info.frames)
    except Exception:  # noqa: BLE001  (any unreadable file just counts as unreadable)
        return None


def flac_info(head: bytes) -> tuple[int, int] | None:
    """(sample rate, frames) from the first bytes of a FLAC file, or None when they hold no rate."""
    # fLaC, then the STREAMINFO block: 4-byte block header, 34 bytes of which bytes 10..17 hold
    # sample rate (20 bits), channels (3), bits per sample (5) and total samples (36).
    if len(head) < 4 + 4 + 18:
        return None
    packed = int.from_bytes(head[8 + 10 : 8 + 18], "big")
    rate = packed >> 44
    frames = packed & ((1 << 36) - 1)
    return (rate, frames) if rate > 0 else None
