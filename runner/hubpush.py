"""Upload a packaged model folder to the Hugging Face Hub (``ctc-tui package --push-to-hub REPO_ID``).

The token comes from a file, never from argv (``ps`` shows every command line to every user): the run's
``RUN_DIR/hf-token`` (mode 0600, owned by you: the trust rules of ``ctc_tui.core.private``), else
``$HF_TOKEN``, else huggingface_hub's own login (``huggingface-cli login``). The endpoint is
huggingface_hub's (``HF_ENDPOINT`` points it at a mirror, or at the test's stand-in of the Hub).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ctc_tui.core import private, rundir

#: ``NAME`` or ``NAMESPACE/NAME`` as the Hub accepts them (letters, digits, ``-``, ``_``, ``.``).
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


class PushError(Exception):
    """An upload that cannot be made as asked (repo id, token); the message names the fix."""


class UploadFailed(PushError):
    """The Hub refused the upload or could not be reached; the packaged folder is kept."""


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise PushError(f"--push-to-hub {repo_id!r} is not a Hub repo id: give NAME or NAMESPACE/NAME")


def token_for(run_dir: Path) -> str:
    """The token to push with (see the module docstring); PushError when there is none anywhere."""
    token = private.read_secret(run_dir / rundir.HF_TOKEN_FILE) or os.environ.get(private.HF_TOKEN_ENV)
    if not token:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise PushError(
            f"no Hub token: write it to {run_dir / rundir.HF_TOKEN_FILE} (mode 0600: "
            f"umask 077; cat > {run_dir / rundir.HF_TOKEN_FILE}), set HF_TOKEN, or huggingface-cli login"
        )
    return token


def push(folder: Path, repo_id: str, token: str, private_repo: bool, message: str) -> str:
    """Create the model repo if needed and upload every file of ``folder`` in one commit; the commit's
    URL. The Hub's address is huggingface_hub's (``HF_ENDPOINT``)."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, repo_type="model", private=private_repo, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo.repo_id, folder_path=str(folder), repo_type="model", commit_message=message
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:  # ValueError: the Hub refused the card's metadata
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UploadFailed(f"upload to {repo_id} failed: {reason}; the folder is kept in {folder}") from None
    return str(commit.commit_url)
