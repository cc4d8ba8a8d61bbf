"""Issue 17, items 3, 2 (checkpoint modes) and 8 (a full disk while saving): the commit marker's rules
(ctc_tui.core.commit_marker, as ctc_tui.core.checkpoints applies them), and the rank's side of a save
(ctc_tui.runner.saving) with a fake Trainer and a fake barrier. The real runs are in
tests/integration/test_checkpoints.py."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from ctc_tui.core import checkpoints, commit_marker
from ctc_tui.core.commit_marker import INTENT, MARKER
from ctc_tui.runner import saving
from tests.checkpoint_files import TRAINER_FILES, cut_short, make_checkpoint, write_torch_zip


def committed_checkpoint(run_dir: Path, step: int, rng_files: int = 1) -> Path:
    """A checkpoint saved the way the runner saves one: intent, the Trainer's files, marker."""
    folder = run_dir / f"checkpoint-{step}"
    commit_marker.begin(folder, step)
    make_checkpoint(run_dir, step, without=("rng_state.pth",), exist_ok=True)
    for rank in range(rng_files):
        write_torch_zip(folder / (f"rng_state_{rank}.pth" if rng_files > 1 else "rng_state.pth"))
    commit_marker.commit(folder, step, rng_files)
    return folder


def truncate(path: Path, size: int) -> None:
    """``truncate -s SIZE PATH``."""
    os.truncate(path, size)


# -- the marker ---------------------------------------------------------------------------------------


def test_a_committed_checkpoint_lists_every_file_with_its_size_and_is_complete(tmp_path):
    folder = committed_checkpoint(tmp_path, 10, rng_files=2)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["step"] == 10 and marker["world_size"] == 2 and marker["hash"] == commit_marker.HASH
    assert sorted(marker["files"]) == sorted(
        [
            *(n for n in TRAINER_FILES if n != "rng_state.pth"),
            "config.json",
            "rng_state_0.pth",
            "rng_state_1.pth",
        ]
    )
    assert all(marker["files"][n]["size"] == (folder / n).stat().st_size for n in marker["files"])
    assert INTENT not in marker["files"] and MARKER not in marker["files"]
    assert commit_marker.problems(folder) == () and checkpoints.is_complete(folder)
    assert stat.S_IMODE((folder / MARKER).stat().st_mode) == 0o600


def test_a_file_cut_short_after_the_commit_is_named_with_both_sizes(tmp_path):
    folder = committed_checkpoint(tmp_path, 20)
    size = (folder / "rng_state.pth").stat().st_size
    truncate(folder / "rng_state.pth", 70)  # the issue's `truncate -s 7000` on a file of this size
    assert checkpoints.problems(folder) == (f"rng_state.pth is 70 bytes, {MARKER} says {size}",)


def test_a_file_of_the_right_size_with_other_content_is_caught(tmp_path):
    folder = committed_checkpoint(tmp_path, 20)
    data = bytearray((folder / "optimizer.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "optimizer.pt").write_bytes(bytes(data))
    assert checkpoints.problems(folder) == (f"optimizer.pt differs from {MARKER} (same size, other content)",)


def test_a_listed_file_that_is_gone_is_named(tmp_path):
    folder = committed_checkpoint(tmp_path, 20)
    (folder / "scheduler.pt").unlink()
    (folder / "rng_state.pth").unlink()
    assert checkpoints.problems(folder) == (
        f"rng_state.pth missing (listed in {MARKER})",
        f"scheduler.pt missing (listed in {MARKER})",
    )


def test_files_added_after_the_commit_do_not_matter(tmp_path):
    folder = committed_checkpoint(tmp_path, 20)
    (folder / "notes.txt").write_text("mine")
    assert checkpoints.is_complete(folder)


def test_a_save_that_never_reached_its_marker_is_partial_however_whole_its_files(tmp_path):
    """A kill between the ranks' files and the marker (the files all there and whole): not complete."""
    folder = tmp_path / "checkpoint-30"
    commit_marker.begin(folder, 30)
    make_checkpoint(tmp_path, 30, exist_ok=True)
    assert checkpoints.missing_parts(folder) == ()  # by the rule for old checkpoints it would pass
    assert checkpoints.problems(folder) == (f"no {MARKER}: the save never finished",)


def test_a_deleted_marker_is_a_save_that_never_finished(tmp_path):
    folder = committed_checkpoint(tmp_path, 30)
    (folder / MARKER).unlink()
    assert checkpoints.problems(folder) == (f"no {MARKER}: the save never finished",)


def test_a_torn_or_foreign_marker_is_not_trusted(tmp_path):
    folder = committed_checkpoint(tmp_path, 30)
    text = (folder / MARKER).read_text()
    (folder / MARKER).write_text(text[: len(text) // 2])
    (problem,) = checkpoints.problems(folder)
    assert problem.startswith(f"{MARKER} unreadable")
    (folder / MARKER).write_text(json.dumps({"files": ["model.safetensors"]}))
    assert checkpoints.problems(folder) == (f"{MARKER} is not a ctc-tui commit marker (no file list)",)
    (folder / MARKER).write_text(text.replace(commit_marker.HASH, "crc32-whole"))
    assert checkpoints.problems(folder) == (
        f"{MARKER} uses hash 'crc32-whole', this ctc-tui knows {commit_marker.HASH!r}",
    )


def test_beginning_a_save_over_a_committed_folder_removes_its_marker_first(tmp_path):
    folder = committed_checkpoint(tmp_path, 40)
    commit_marker.begin(folder, 40)
    assert not (folder / MARKER).exists() and (folder / INTENT).is_file()
    assert not checkpoints.is_complete(folder)


# -- the hash -----------------------------------------------------------------------------------------


def test_a_small_file_is_hashed_whole_and_a_large_one_by_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(commit_marker, "SAMPLE_WHOLE", 1 << 10)
    monkeypatch.setattr(commit_marker, "EDGE", 1 << 10)
    monkeypatch.setattr(commit_marker, "BLOCK", 1 << 8)
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(bytes(1000))
    large.write_bytes(bytes(64 << 10))
    before = commit_marker.fingerprint(small), commit_marker.fingerprint(large)

    def flip(path: Path, offset: int) -> str:
        data = bytearray(path.read_bytes())
        data[offset] ^= 1
        path.write_bytes(bytes(data))
        changed = commit_marker.fingerprint(path)
        data[offset] ^= 1
        path.write_bytes(bytes(data))
        return changed

    assert flip(small, 500) != before[0]  # whole: any byte counts
    samples = commit_marker._samples(64 << 10)
    assert samples[0] == (0, 1 << 10) and samples[-1] == ((64 << 10) - (1 << 10), 1 << 10)
    assert len(samples) == commit_marker.SAMPLES + 2
    inside = samples[5][0] + 3
    assert flip(large, inside) != before[1]  # a sampled block
    assert flip(large, (64 << 10) - 1) != before[1]  # the tail
    assert commit_marker.fingerprint(large) == before[1]
    large.write_bytes(bytes((64 << 10) + 1))
    assert commit_marker.fingerprint(large) != before[1]  # the size is part of it


# -- checkpoints from before markers ------------------------------------------------------------------


def test_an_old_checkpoint_without_marker_is_judged_by_its_files(tmp_path):
    folder = make_checkpoint(tmp_path, 10)
    assert checkpoints.problems(folder) == ()
    cut_short(folder / "rng_state.pth", keep=0.5)  # optional, but when there it must be whole
    assert checkpoints.problems(folder) == ("rng_state.pth missing or cut short",)


def test_an_old_checkpoint_with_a_damaged_small_torch_file_is_partial(tmp_path):
    folder = make_checkpoint(tmp_path, 10)
    write_torch_zip(folder / "training_args.bin")
    assert checkpoints.is_complete(folder)
    data = bytearray((folder / "training_args.bin").read_bytes())
    data[data.index(b"\x80\x02")] ^= 0xFF  # a byte of a member: its CRC no longer matches
    (folder / "training_args.bin").write_bytes(bytes(data))
    assert checkpoints.missing_parts(folder) == ("training_args.bin",)
    (folder / "config.json").write_text("{")
    assert checkpoints.missing_parts(folder) == ("config.json", "training_args.bin")


# -- the resume choice --------------------------------------------------------------------------------


def test_resume_takes_the_previous_committed_checkpoint_and_names_the_bad_file(tmp_path):
    committed_checkpoint(tmp_path, 10)
    newest = committed_checkpoint(tmp_path, 20)
    size = (newest / "rng_state.pth").stat().st_size
    truncate(newest / "rng_state.pth", 7)
    point = checkpoints.resume_point(tmp_path)
    assert point.checkpoint.name == "checkpoint-10" and [c.name for c in point.skipped] == ["checkpoint-20"]
    assert point.warning() == (
        "skipping partial checkpoint(s), a save that was cut short: checkpoint-20 (rng_state.pth is 7 "
        f"bytes, {MARKER} says {size}); resuming from checkpoint-10"
    )
    assert point.summary() == "checkpoint-10 (skips checkpoint-20)"


def test_old_and_committed_checkpoints_mix_in_one_run_dir(tmp_path):
    """A run begun by an older ctc-tui and resumed by this one."""
    make_checkpoint(tmp_path, 10)
    committed_checkpoint(tmp_path, 20)
    assert checkpoints.latest_complete(tmp_path).name == "checkpoint-20"
    (tmp_path / "checkpoint-20" / MARKER).unlink()
    assert checkpoints.latest_complete(tmp_path).name == "checkpoint-10"


def test_the_resume_choice_reads_no_checkpoint_older_than_the_one_it_takes(tmp_path, monkeypatch):
    for step in (10, 20, 30):
        committed_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-30" / MARKER).unlink()
    looked: list[str] = []
    real = checkpoints.problems
    monkeypatch.setattr(checkpoints, "problems", lambda f: looked.append(Path(f).name) or real(f))
    assert checkpoints.latest_complete(tmp_path).name == "checkpoint-20"
    assert looked == ["checkpoint-30", "checkpoint-20"]


# -- durable, private files ---------------------------------------------------------------------------


def test_sync_tree_fsyncs_every_file_and_folder_and_the_parent(tmp_path, monkeypatch):
    folder = committed_checkpoint(tmp_path, 10)
    (folder / "global_step10").mkdir()
    write_torch_zip(folder / "global_step10" / "mp_rank_00_model_states.pt")
    synced: list[str] = []
    monkeypatch.setattr(commit_marker, "fsync_path", lambda p: synced.append(os.path.relpath(p, tmp_path)))
    commit_marker.sync_tree(folder)
    files = [os.path.join("checkpoint-10", n) for n in os.listdir(folder) if (folder / n).is_file()]
    assert set(synced) >= {*files, "checkpoint-10", "checkpoint-10/global_step10", "."}
    assert "checkpoint-10/global_step10/mp_rank_00_model_states.pt" in synced


def test_sync_tree_passes_over_a_file_another_rank_removes_meanwhile(tmp_path, monkeypatch):
    folder = committed_checkpoint(tmp_path, 10)
    real = commit_marker.fsync_path

    def racing(path):  # rank 0 removes an old shard between this rank's listing and its fsync
        if str(path).endswith("scheduler.pt"):
            os.unlink(path)
        return real(path)

    monkeypatch.setattr(commit_marker, "fsync_path", racing)
    commit_marker.sync_tree(folder)
    assert not (folder / "scheduler.pt").exists()


def test_fsync_path_takes_a_folder_a_filesystem_cannot_fsync(tmp_path, monkeypatch):
    def refuse(fd):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "fsync", refuse)
    commit_marker.fsync_path(tmp_path)  # a folder on such a filesystem: taken as it is
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):  # a file that cannot be made durable is an error
        commit_marker.fsync_path(tmp_path / "f")


def test_make_private_sets_0600_files_and_0700_folders(tmp_path):
    folder = tmp_path / "checkpoint-1"
    (folder / "tag").mkdir(parents=True, mode=0o755)
    (folder / "tag" / "x.pt").write_text("x")
    os.chmod(folder / "tag" / "x.pt", 0o644)
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the checkpoint's")
    os.chmod(target, 0o644)
    (folder / "link").symlink_to(target)
    commit_marker.make_private(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "tag").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "tag" / "x.pt").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # a link's target is left alone


# -- the rank's side of a save (ctc_tui.runner.saving) ------------------------------------------------


def fake_trainer(run_dir: Path, step: int, writer: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        args=SimpleNamespace(output_dir=str(run_dir), should_save=writer),
        state=SimpleNamespace(global_step=step),
    )


def test_a_save_begins_with_the_intent_meets_at_the_barrier_then_commits_and_rotates(tmp_path):
    trainer = fake_trainer(tmp_path, 12)
    folder = tmp_path / "checkpoint-12"
    seen: list[str] = []

    def barrier() -> None:  # every rank's files are durable; the marker is not written yet
        seen.append("barrier")
        assert (folder / INTENT).is_file() and not (folder / MARKER).exists()

    def rotate() -> None:  # the Trainer's rotation, asked for in the middle of its save
        seen.append("rotate")
        assert checkpoints.is_complete(folder)

    with saving.committed(trainer, barrier=barrier):
        assert (folder / INTENT).is_file()
        make_checkpoint(tmp_path, 12, exist_ok=True)
        saving.deferred_rotation(trainer, rotate)
        assert seen == []
    assert seen == ["barrier", "rotate"]
    assert commit_marker.read(folder)["step"] == 12
    saving.deferred_rotation(trainer, lambda: seen.append("now"))  # outside a save: at once
    assert seen[-1] == "now"


def test_another_rank_syncs_and_waits_but_writes_neither_intent_nor_marker(tmp_path):
    trainer = fake_trainer(tmp_path, 12, writer=False)
    calls: list[str] = []
    with saving.committed(trainer, barrier=lambda: calls.append("barrier")):
        (tmp_path / "checkpoint-12").mkdir()
        write_torch_zip(tmp_path / "checkpoint-12" / "rng_state_1.pth")
    assert calls == ["barrier"]
    assert sorted(os.listdir(tmp_path / "checkpoint-12")) == ["rng_state_1.pth"]


def test_checkpoint_files_are_private_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with saving.committed(fake_trainer(tmp_path, 3), barrier=lambda: None):
            folder = tmp_path / "checkpoint-3"
            (folder / "global_step3").mkdir()
            (folder / "global_step3" / "shard.pt").write_text("x")
            (folder / "late.pt").write_text("y")
            os.chmod(folder / "late.pt", 0o644)  # a library that sets its own mode
        assert os.umask(0o022) == 0o022  # restored after the save
    finally:
        os.umask(previous)
    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}
    assert {m for n, m in modes.items() if (folder / n).is_file()} == {0o600}
    assert modes["global_step3"] == 0o700 and stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_the_final_models_files_are_made_private_and_nothing_else(tmp_path):
    for name in ("model.safetensors", "vocab.json", "model-00001-of-00002.safetensors", "command.sh"):
        (tmp_path / name).write_text("x")
        os.chmod(tmp_path / name, 0o755 if name == "command.sh" else 0o644)
    saving.make_final_model_private(tmp_path)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {
        "model.safetensors": 0o600,
        "vocab.json": 0o600,
        "model-00001-of-00002.safetensors": 0o600,
        "command.sh": 0o755,
    }


def failing_save(tmp_path: Path, exc: BaseException) -> tuple[BaseException, list[str]]:
    rotated: list[str] = []
    trainer = fake_trainer(tmp_path, 7)
    with pytest.raises(BaseException) as caught:
        with saving.committed(trainer, barrier=lambda: None):
            make_checkpoint(tmp_path, 7, without=("trainer_state.json",), exist_ok=True)
            saving.deferred_rotation(trainer, lambda: rotated.append("rotated"))
            raise exc
    assert trainer.ctc_rotations is None  # later rotations are not held back forever
    return caught.value, rotated


def test_a_full_disk_is_one_line_naming_the_checkpoint_and_the_free_space(tmp_path):
    failure, rotated = failing_save(tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(failure, saving.SaveFailed)
    assert str(failure).startswith("disk full while saving checkpoint-7 (free: ")
    assert f" MiB in {tmp_path / 'checkpoint-7'}); free some space, then resume with" in str(failure)
    assert str(failure).endswith(f"ctc-tui run --resume {tmp_path}")
    assert rotated == []  # no older checkpoint is deleted for a save that failed
    point = checkpoints.resume_point(tmp_path)  # the partial one has no marker: a resume skips it
    assert point.checkpoint is None and point.skipped[0].problems == (
        f"no {MARKER}: the save never finished",
    )


@pytest.mark.parametrize(
    "message",
    [
        "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534",
        "Error while serializing: I/O error: No space left on device (os error 28)",
    ],
)
def test_the_libraries_words_for_a_full_disk_are_recognised(tmp_path, monkeypatch, message):
    class SafetensorError(Exception):
        """safetensors' own error type: neither an OSError nor a RuntimeError."""

    monkeypatch.setattr(saving, "free_space", lambda path: (path, 4096))
    failure, _ = failing_save(tmp_path, (RuntimeError if "pos" in message else SafetensorError)(message))
    assert str(failure).startswith(
        f"disk full while saving checkpoint-7 (free: 0.0 MiB in {tmp_path / 'checkpoint-7'})"
    )


def test_a_failed_write_with_room_left_says_what_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(saving, "free_space", lambda path: (path, 10 << 30))
    folder = tmp_path / "checkpoint-7"
    failure, _ = failing_save(tmp_path, RuntimeError("unexpected pos 576 vs 534"))
    assert (
        str(failure)
        == f"could not write checkpoint-7: unexpected pos 576 vs 534 (free: 10240.0 MiB in {folder})"
    )


def test_other_errors_and_interrupts_pass_through_unchanged(tmp_path):
    failure, _ = failing_save(tmp_path, RuntimeError("CUDA error: an illegal memory access"))
    assert type(failure) is RuntimeError
    failure, _ = failing_save(tmp_path, KeyboardInterrupt())
    assert type(failure) is KeyboardInterrupt
