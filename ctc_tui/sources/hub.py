"""A datasets-library dataset (``data.dataset_name``): the login-node half of the hub source.

Here: what can be checked without the datasets library (is the dataset in the local caches, can the
hub be reached when it is not). The runner loads hub splits itself, with the datasets library
(``ctc_tui.runner.hub``, found there under this source's name); the wizard's data check does not
scan them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.core.findings import Finding, error
from ctc_tui.core.sources import DataError, RawSplit
from ctc_tui.sources.base import CHECK_SAMPLE, NO_OPTIONS, Source, SourceOptions
from ctc_tui.sources.hfcache import datasets_cache_dir, hub_cache, offline

if TYPE_CHECKING:
    from ctc_tui.core.preset import Preset

#: Datasets-library loaders that read local files (no hub download).
PACKAGED_LOADERS = {
    "csv",
    "json",
    "parquet",
    "arrow",
    "text",
    "audiofolder",
    "imagefolder",
    "webdataset",
    "pandas",
}


def dataset_cached(name: str, environ: Mapping[str, str]) -> bool:
    """Is hub dataset ``name`` in the datasets cache (``ORG___NAME`` or ``NAME``) or the hub cache
    (``datasets--ORG--NAME``)? Matched without regard to case or - versus _."""

    def norm(text: str) -> str:
        return text.lower().replace("-", "_")

    wanted_ds = {norm(name.replace("/", "___")), norm(name.split("/")[-1])}
    wanted_hub = norm("datasets--" + name.replace("/", "--"))
    for folder, wanted in ((datasets_cache_dir(environ), wanted_ds), (hub_cache(environ), {wanted_hub})):
        try:
            if any(norm(p.name) in wanted for p in folder.iterdir() if p.is_dir()):
                return True
        except OSError:
            continue
    return False


class Hub(Source):
    name = "hub"
    local = False

    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        raise DataError(
            f"hub split '{split}': hub datasets are loaded by the runner with the datasets "
            "library; for a local copy use data.source=librispeech, audiofolder or manifest"
        )

    def check(
        self,
        preset: Preset,
        environ: Mapping[str, str],
        online: Callable[[], bool],
        sample: int = CHECK_SAMPLE,
    ) -> list[Finding]:
        data = preset.data
        name = data.dataset_name or ""
        findings: list[Finding] = []
        root = Path(data.dataset_dir).expanduser() if data.dataset_dir else None
        if root is not None and not root.exists():
            findings.append(
                error(
                    "data.dataset_dir",
                    f"{root} does not exist: fix data.dataset_dir "
                    "(the data_dir handed to the loader), or remove it",
                )
            )
        if name in PACKAGED_LOADERS or Path(name).expanduser().exists() or dataset_cached(name, environ):
            return findings
        fix = (
            "load it once where there is network and copy the datasets cache, or use a local copy "
            "(data.source=librispeech or manifest with data.dataset_dir)"
        )
        if offline(environ, "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
            findings.append(
                error(
                    "data.dataset_name",
                    f"'{name}' is not in the datasets cache "
                    f"({datasets_cache_dir(environ)}) and the hub is offline: {fix}",
                )
            )
        elif not online():
            findings.append(
                error(
                    "data.dataset_name",
                    f"'{name}' is not in the datasets cache and the hub is unreachable: {fix}",
                )
            )
        return findings


SOURCE = Hub()
