"""A rank's log on a full filesystem must not end the rank (runner/__main__.py ``LogStream``)."""

import errno
import io

from ctc_tui.runner.__main__ import LogStream


class FullFile(io.StringIO):
    """Accepts text until ``full`` is set, then fails every write and flush with ENOSPC."""

    full = False

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)

    def flush(self) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_log_drops_text_instead_of_raising():
    raw = FullFile()
    stream = LogStream(raw)
    print("before", file=stream)
    raw.full = True
    print({"loss": 2.75, "epoch": 8.0}, file=stream)  # the Trainer's log line, mid-step
    stream.flush()
    assert stream.dropped == len("{'loss': 2.75, 'epoch': 8.0}") + 1
    raw.full = False
    print("after", file=stream)
    assert raw.getvalue() == "before\nafter\n"
    assert stream.getvalue() == raw.getvalue()  # everything else is the stream's own
