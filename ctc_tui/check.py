"""``ctc-tui check``: will this preset start here? Everything a run needs, checked before any rank starts.

Each finding is one line, ``error`` or ``warning``, naming the preset key it is about and the fix. A run
with errors would fail (often minutes in, after preprocessing); warnings are worth reading but do not
stop it. ``ctc-tui run`` runs the same checks first (``--no-check`` skips them).

What is checked:
- cards: the requested number of Gaudi cards / GPUs exist on this node and are free; CPU ranks do not
  outnumber the physical cores;
- launcher: its own checks (``ctc_tui.launchers``: mpirun is Open MPI 4 or 5, deepspeed on PATH, pdsh
  for other hosts) and the scheduler's (``ctc_tui.schedulers``: a batch scheduler's commands, checked
  instead of the cards, the launcher and the hostfile, which are the job's nodes'); the runner's
  packages (torch, transformers, ...) installed for this Python; the Habana stack and optimum-habana
  for HPU runs; HPU graphs only where optimum-habana allows them (lazy mode);
- model: a local folder with config.json, or a hub id present in the Hugging Face cache when offline;
- data: local folders and splits exist, a few clips' sample rates; hub datasets cached when offline;
- output dir: writable, enough free disk, and not someone's earlier run (unless overwrite_output_dir);
  short enough for its Unix sockets (checked before anything is written); yours, below folders no one
  else can swap (ctc_tui.core.trust: OpenSSH's StrictModes rule);
- hostfile: every other host answers ``ssh -o BatchMode=yes``.

Standard library (and psutil through devices) only: never torch, transformers or datasets. Packages are
looked up with ``importlib.util.find_spec`` / ``importlib.metadata``, which import nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ctc_tui import launchers, schedulers
from ctc_tui.core import checkpoints, rundir, trust
from ctc_tui.core.findings import Finding
from ctc_tui.core.findings import error as _error
from ctc_tui.core.findings import warning as _warning
from ctc_tui.core.preset import Preset
from ctc_tui.devices import run_bounded
from ctc_tui.launchers.hostfile import read_hostfile
from ctc_tui.schedulers import Scheduler
from ctc_tui.sources import source
from ctc_tui.sources.base import CHECK_SAMPLE
from ctc_tui.sources.hfcache import hub_cache
from ctc_tui.sources.hfcache import offline as _offline
from ctc_tui.sources.textcheck import check_text

SSH_TIMEOUT = 3  # seconds, ssh's own ConnectTimeout
#: Packages the runner imports on every rank, with what to install when one is missing.
RUNNER_PACKAGES = ("torch", "transformers", "datasets", "soundfile", "soxr", "jiwer", "accelerate")


# -- where the ranks run ------------------------------------------------------------------------------


def local_names() -> set[str]:
    """Names and addresses that mean "this machine"."""
    names = {"localhost", "localhost.localdomain", "ip6-localhost", "::1", "0.0.0.0"}
    try:
        host = socket.gethostname()
        names |= {host, host.split(".")[0], socket.getfqdn()}
    except OSError:
        pass
    import psutil

    try:
        interfaces = psutil.net_if_addrs()
    except (OSError, psutil.Error):  # addresses only widen the match
        interfaces = {}
    for addresses in interfaces.values():
        names |= {a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)}
    return {n.lower() for n in names if n}


def is_local(host: str, names: set[str] | None = None) -> bool:
    host = host.strip().lower()
    return host.startswith("127.") or host in (names if names is not None else local_names())


def _hostfile_hosts(preset: Preset) -> list[tuple[str, int]] | None:
    if not preset.launch.hostfile:
        return None
    try:
        return read_hostfile(preset.launch.hostfile)
    except (OSError, ValueError):
        return None


def ranks_here(preset: Preset) -> int | None:
    """How many ranks run on this machine: world_size without a hostfile, the local hosts' slots with
    one, None when every rank runs elsewhere (nothing local to check)."""
    hosts = _hostfile_hosts(preset)
    if preset.launch.hostfile:
        if hosts is None:
            return None
        names = local_names()
        slots = sum(n for host, n in hosts if is_local(host, names))
        return slots or None
    return 1 if preset.launch.launcher == "single" else preset.launch.world_size


# -- cards --------------------------------------------------------------------------------------------


def card_environment(preset: Preset, detected, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``HABANA_VISIBLE_MODULES`` naming free Gaudi cards when some of this node's are busy, so a run of
    N cards takes N free ones (by local rank the ranks would take modules 0..N-1, busy or not). Nothing
    when the user set it, when every rank runs on this node's free cards anyway, or off the HPU."""
    env = os.environ if environ is None else environ
    if (
        not preset.gaudi.use_habana
        or "HABANA_VISIBLE_MODULES" in env
        or preset.launch.hostfile
        or detected is None
    ):
        return {}
    from ctc_tui.devices import free_hpu_modules

    need = ranks_here(preset) or 0
    modules = free_hpu_modules(detected, need) if need else None
    return {"HABANA_VISIBLE_MODULES": ",".join(map(str, modules))} if modules else {}


def _busy_text(devices) -> str:
    shown = [f"{d.label} by pid {', '.join(map(str, d.busy_pids))}" for d in devices if d.busy_pids][:4]
    return "; ".join(shown)


def check_cards(preset: Preset, detected) -> list[Finding]:
    need = ranks_here(preset)
    if need is None:
        return []
    findings: list[Finding] = []
    notes = f" ({'; '.join(detected.notes)})" if detected.notes else ""
    if preset.gaudi.use_habana:
        hpus = detected.hpus
        if not hpus:
            return [
                _error(
                    "gaudi.use_habana",
                    f"no Gaudi card found on this machine{notes}: run on a Gaudi node "
                    "(where hl-smi lists the cards), or set gaudi.use_habana=false to train on CUDA/CPU",
                )
            ]
        if need > len(hpus):
            return [
                _error(
                    "launch.world_size",
                    f"{need} cards requested but this node has {len(hpus)} Gaudi cards: "
                    f"set launch.world_size={len(hpus)}",
                )
            ]
        free = [d for d in hpus if not d.busy]
        if len(free) < need:
            findings.append(
                _error(
                    "launch.world_size",
                    f"only {len(free)} of {len(hpus)} Gaudi cards are free "
                    f"({_busy_text(hpus)}): wait for those processes to end, or set "
                    f"launch.world_size={max(1, len(free))}",
                )
            )
        return findings
    if preset.device_kind == "cuda-or-cpu":
        gpus = detected.gpus
        if gpus:
            if need > len(gpus):
                return [
                    _error(
                        "launch.world_size",
                        f"{need} ranks requested but this node has {len(gpus)} GPUs: "
                        f"set launch.world_size={len(gpus)}",
                    )
                ]
            busy = [d for d in gpus if d.busy]
            if len(gpus) - len(busy) < need:
                findings.append(
                    _warning(
                        "launch.world_size",
                        f"{len(busy)} of {len(gpus)} GPUs are in use "
                        f"({_busy_text(gpus)}): the run shares them and may run out of memory; "
                        "wait, or lower launch.world_size",
                    )
                )
            return findings
        findings.append(
            _warning(
                "training.use_cpu",
                f"no NVIDIA GPU found{notes}: this run trains on the CPU; "
                "set training.use_cpu=true to say so (or run on a GPU node)",
            )
        )
    cores = detected.cpu.physical_cores
    if need > cores:
        findings.append(
            _warning(
                "launch.world_size",
                f"{need} CPU ranks on {cores} physical cores oversubscribe "
                f"the CPU and run slowly: set launch.world_size={cores} or less",
            )
        )
    return findings


# -- launcher and software ----------------------------------------------------------------------------


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _distribution(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_launcher(preset: Preset, which: Callable[[str], str | None] = shutil.which) -> list[Finding]:
    """The launcher's own checks (``ctc_tui.launchers``: mpirun's version, deepspeed on PATH, ...) and
    what it refuses to start (a run dir a shell would expand, ...)."""
    launcher = launchers.get(preset.launch.launcher)
    return launcher.checks(preset, which, run_bounded) + launcher.refusals(preset)


def check_software(preset: Preset) -> list[Finding]:
    """The runner's packages for this Python (ranks started here use it), without importing any."""
    if ranks_here(preset) is None:
        return []
    findings: list[Finding] = []
    missing = [m for m in RUNNER_PACKAGES if not _installed(m)]
    if missing:
        why = " (torchrun is python -m torch.distributed.run)" if preset.launch.launcher == "torchrun" else ""
        findings.append(
            _error(
                "",
                f"{', '.join(missing)} not installed for {sys.executable}{why}: "
                "pip install 'ctc-tui[train]' (on Gaudi keep the image's torch)",
            )
        )
    if preset.gaudi.use_habana:
        if not _installed("habana_frameworks"):
            findings.append(
                _error(
                    "gaudi.use_habana",
                    f"the Habana PyTorch stack (habana_frameworks) is not "
                    f"installed for {sys.executable}: run inside Intel's Gaudi software image "
                    "(habana-torch-plugin), or set gaudi.use_habana=false",
                )
            )
        if _distribution("optimum-habana") is None:
            findings.append(
                _error(
                    "gaudi.use_habana",
                    "optimum-habana is not installed: pip install 'ctc-tui[gaudi]' (optimum-habana)",
                )
            )
    return findings


def check_gaudi_settings(preset: Preset) -> list[Finding]:
    """What GaudiTrainingArguments refuses is refused when the preset loads (ctc_tui.core.gaudi_rules);
    what runs but not as written is warned of here: its rules' warnings, HPU graphs off the HPU or with
    a new shape every batch. Gaudi's fused attention off the HPU runs as sdpa: said, not an error."""
    from ctc_tui.core.gaudi_rules import warnings

    gaudi = preset.gaudi
    findings = [_warning(key, message) for key, message in warnings(preset)]
    if preset.model.attn_implementation == "gaudi_fused_sdpa" and not gaudi.use_habana:
        findings.append(
            _warning(
                "model.attn_implementation",
                "gaudi_fused_sdpa is optimum-habana's kernel and exists only on Gaudi: this run uses "
                "sdpa instead (set model.attn_implementation=sdpa to say so)",
            )
        )
    return findings + _check_hpu_graphs(preset)


def _check_hpu_graphs(preset: Preset) -> list[Finding]:
    gaudi = preset.gaudi
    graphs = [k for k in ("use_hpu_graphs_for_training", "use_hpu_graphs_for_inference") if getattr(gaudi, k)]
    if not graphs:
        return []
    keys = " and ".join(f"gaudi.{k}" for k in graphs)
    if not gaudi.use_habana:
        return [
            _warning(
                f"gaudi.{graphs[0]}",
                f"HPU graphs exist only on Gaudi, so {keys} is ignored here: "
                "set gaudi.use_habana=true, or set it to false",
            )
        ]
    findings = []  # HPU graphs in eager mode without a compile backend: refused when the preset loads
    if gaudi.use_hpu_graphs_for_training and preset.data.padding == "longest":
        findings.append(
            _warning(
                "data.padding",
                "HPU graphs with data.padding=longest record a new graph for "
                "almost every batch (slow, memory-hungry): set data.padding=buckets (or auto)",
            )
        )
    return findings


# -- model --------------------------------------------------------------------------------------------


def hub_reachable(environ: Mapping[str, str], timeout: float = 2.0) -> bool:
    """Can this machine open a connection to the hub (HF_ENDPOINT, default huggingface.co)?"""
    endpoint = environ.get("HF_ENDPOINT", "https://huggingface.co")
    match = re.match(r"^(?:(https?)://)?([^/:]+)(?::(\d+))?", endpoint)
    if not match:
        return False
    port = int(match[3]) if match[3] else (80 if match[1] == "http" else 443)
    result: dict[str, bool] = {}

    def probe() -> None:
        try:
            with socket.create_connection((match[2], port), timeout=timeout):
                result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=probe, daemon=True)  # name resolution ignores the socket timeout
    thread.start()
    thread.join(timeout + 1)
    return result.get("ok", False)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def _check_model_source(
    key: str, name: str, cache_dir: str | None, environ: Mapping[str, str], online: Callable[[], bool]
) -> list[Finding]:
    from ctc_tui.catalog import cached_snapshot

    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and key == "model.model_name_or_path":
            return [
                _error(
                    key,
                    f"{path} has no config.json: point {key} at the model folder (the one holding "
                    "config.json and the weights)",
                )
            ]
        return []
    if path.exists() or _looks_like_path(name):
        return [
            _error(
                key,
                f"{path} is not a folder: fix the path (relative paths are taken from the preset "
                "file's folder), or give a hub id",
            )
        ]
    where = Path(cache_dir).expanduser() if cache_dir else hub_cache(environ)
    if cached_snapshot(name, str(where)):
        return []
    fix = (
        f"download it where there is network (huggingface-cli download {name}) and copy the cache to "
        f"{where}, or set {key} to a local folder"
    )
    if _offline(environ, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        return [
            _error(key, f"'{name}' is not in the Hugging Face cache ({where}) and HF_HUB_OFFLINE=1: {fix}")
        ]
    if not online():
        return [
            _error(
                key, f"'{name}' is not in the Hugging Face cache ({where}) and the hub is unreachable: {fix}"
            )
        ]
    return []


def check_model(preset: Preset, environ: Mapping[str, str], online: Callable[[], bool]) -> list[Finding]:
    model = preset.model
    findings: list[Finding] = []
    if not model.architecture:
        findings += _check_model_source(
            "model.model_name_or_path", model.model_name_or_path, model.cache_dir, environ, online
        )
    if model.tokenizer_name_or_path:
        findings += _check_model_source(
            "model.tokenizer_name_or_path", model.tokenizer_name_or_path, model.cache_dir, environ, online
        )
    return findings


# -- data ---------------------------------------------------------------------------------------------


def check_data(
    preset: Preset, environ: Mapping[str, str], online: Callable[[], bool], sample: int = CHECK_SAMPLE
) -> list[Finding]:
    """The preset's data source checks its own data (ctc_tui/sources/<name>.py)."""
    return source(preset.data.source).check(preset, environ, online, sample)


# -- output dir ---------------------------------------------------------------------------------------


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _weights_bytes(preset: Preset) -> int:
    """Size of the model's weights (fp32), from the files when they are here, else a known size."""
    from ctc_tui.catalog import KNOWN_MODELS, cached_snapshot

    model = preset.model
    name = model.architecture or model.model_name_or_path
    folder: Path | None = None
    if not model.architecture:
        local = Path(name).expanduser()
        folder = local if local.is_dir() else cached_snapshot(name, model.cache_dir)
    if folder is not None:
        try:
            size = sum(
                p.stat().st_size
                for p in folder.iterdir()
                if p.suffix in (".safetensors", ".bin") and p.is_file()
            )
        except OSError:
            size = 0
        if size:
            return size
    for known in KNOWN_MODELS:
        if known.name == name:
            match = re.match(r"(\d+(?:\.\d+)?)([MB])", known.params)
            if match:
                return int(float(match[1]) * (1e6 if match[2] == "M" else 1e9) * 4)
    return int(317e6 * 4)  # unknown: assume a large wav2vec2


def check_output_dir(preset: Preset, resume: bool = False) -> list[Finding]:
    from ctc_tui.core.preset import has_placeholders

    text = preset.training.output_dir
    if has_placeholders(text):
        return []  # filled in at launch ({timestamp}): a fresh folder every time; see resolve_output_dir
    out = Path(text).expanduser()
    sockets = rundir.socket_path_problem(out)
    if sockets:
        return [_error("training.output_dir", sockets)]
    try:
        untrusted = trust.path_problem(out)
    except trust.Untrusted as exc:
        untrusted = str(exc)
    if untrusted:
        return [_error("training.output_dir", untrusted)]
    if out.exists() and not out.is_dir():
        return [_error("training.output_dir", f"{out} is a file: choose another --output-dir")]
    holds = out.is_dir() and any(p.name != rundir.SUPERVISOR_LOCK for p in out.iterdir())
    if not resume and holds and not preset.training.overwrite_output_dir:
        return [
            _error(
                "training.output_dir",
                f"{out} exists and is not empty: resume it with "
                f"ctc-tui run --resume {out}, choose another --output-dir, or set "
                "training.overwrite_output_dir=true to train into it",
            )
        ]
    base = _existing_ancestor(out)
    if not os.access(base, os.W_OK | os.X_OK):
        return [_error("training.output_dir", f"cannot write to {base}: choose another --output-dir")]
    keep = 0 if preset.training.save_strategy == "no" else (preset.training.save_total_limit or 3)
    weights = _weights_bytes(preset)
    need = int(weights * (1 + 3 * keep) * 1.1)  # final model + checkpoints with optimizer state (x3)
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return []
    if free < need:
        from ctc_tui.devices import fmt_bytes

        return [
            _warning(
                "training.output_dir",
                f"only {fmt_bytes(free)} free on {base}; this run's model and "
                f"{keep} checkpoint(s) need about {fmt_bytes(need)}: free some space, lower "
                "training.save_total_limit, or choose another --output-dir",
            )
        ]
    return []


def check_resume_point(preset: Preset, resume: bool) -> list[Finding]:
    """A resume that skips checkpoints (not committed, or a file cut short since): a warning naming each
    one, why, and where the run continues from (the rank says it again when it starts)."""
    if not resume or not preset.training.do_train:
        return []
    point = checkpoints.resume_point(Path(preset.training.output_dir).expanduser())
    if not point.skipped:
        return []
    target = point.checkpoint.name if point.checkpoint else "the start (no complete checkpoint)"
    skipped = "; ".join(c.describe() for c in point.skipped)
    return [_warning("training.output_dir", f"the resume skips {skipped} and continues from {target}")]


# -- hostfile -----------------------------------------------------------------------------------------


def _ssh(host: str, ssh: str) -> str | None:
    """None when ``ssh HOST true`` works without a password; else the reason."""
    try:
        proc = run_bounded(
            [ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT}", "--", host, "true"],
            SSH_TIMEOUT + 4,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {SSH_TIMEOUT + 4} s"
    except OSError as exc:
        return str(exc.strerror or exc)
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("Warning:")]
    return lines[-1][:160] if lines else f"ssh exit {proc.returncode}"


def check_hostfile(preset: Preset, which: Callable[[str], str | None] = shutil.which) -> list[Finding]:
    hostfile = preset.launch.hostfile
    if not hostfile:
        return []
    path = Path(hostfile).expanduser()
    if not path.is_file():
        return [_error("launch.hostfile", f"{path} not found: fix launch.hostfile (lines 'host slots=N')")]
    try:
        hosts = read_hostfile(path)
    except (OSError, ValueError) as exc:
        return [_error("launch.hostfile", f"{exc}: write one 'host slots=N' line per node")]
    names = local_names()
    remote = list(dict.fromkeys(h for h, _ in hosts if not is_local(h, names)))
    if not remote:
        return []
    ssh = which("ssh")
    if ssh is None:
        return [
            _error(
                "launch.hostfile",
                f"ssh not found, needed to start ranks on {', '.join(remote[:3])}: "
                "apt-get install openssh-client",
            )
        ]
    reasons: dict[str, str | None] = {}

    def probe(host: str) -> None:
        reasons[host] = _ssh(host, ssh)

    threads = [threading.Thread(target=probe, args=(h,), daemon=True) for h in remote]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SSH_TIMEOUT + 6)
    findings = launchers.get(preset.launch.launcher).remote_checks(preset, remote, which)
    for host in remote:
        reason = reasons.get(host, "no answer")
        if reason is not None:
            findings.append(
                _error(
                    "launch.hostfile",
                    f"cannot reach {host} with ssh ({reason}): set up "
                    f"passwordless ssh (ssh-copy-id {host}), or remove it from {path}",
                )
            )
    return findings


# -- all together -------------------------------------------------------------------------------------


def run_checks(
    preset: Preset,
    *,
    resume: bool = False,
    detected=None,
    environ: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    scheduler: Scheduler | None = None,
) -> list[Finding]:
    """Every check for ``preset`` (output_dir already resolved); errors first, then warnings.

    ``resume``: the output dir is meant to exist (``ctc-tui run --resume``). ``detected``: the result of
    devices.detect() when the caller has one (the wizard); found here only when the preset needs it.
    ``scheduler``: what places the ranks (default: the local process tree); its own checks run, and this
    machine's cards, the launcher and the hostfile are checked only when it places the ranks here."""
    if scheduler is None:
        scheduler = schedulers.get(schedulers.LOCAL)
    env = os.environ if environ is None else environ
    reachable: dict[str, bool] = {}

    def online() -> bool:  # asked at most once, and only when something is missing from the caches
        if "ok" not in reachable:
            reachable["ok"] = hub_reachable(env)
        return reachable["ok"]

    if detected is None and scheduler.places_here:
        from ctc_tui import devices

        if preset.device_kind == "cpu":
            detected = devices.Detected(devices=[], cpu=devices.cpu_info())
        else:
            detected = devices.detect()
    findings: list[Finding] = []
    placement = [lambda: scheduler.checks(preset, which, run_bounded)]
    if scheduler.places_here:
        placement += [
            lambda: check_cards(preset, detected),
            lambda: check_launcher(preset, which),
            lambda: check_hostfile(preset, which),
        ]
    for check in (
        *placement,
        lambda: check_software(preset),
        lambda: check_gaudi_settings(preset),
        lambda: check_model(preset, env, online),
        lambda: check_data(preset, env, online),
        lambda: check_text(preset),
        lambda: check_output_dir(preset, resume),
        lambda: check_resume_point(preset, resume),
    ):
        try:
            findings += check()
        except Exception as exc:  # noqa: BLE001  (a broken check is reported, never fatal)
            findings.append(
                _warning(
                    "",
                    f"a check could not run ({type(exc).__name__}: {exc}); "
                    "please report it (skip all checks with ctc-tui run --no-check)",
                )
            )
    return sorted(findings, key=lambda f: f.level != "error")


def check_preset_file(
    preset_arg: str, overrides: list[str] | None = None, output_dir: str | None = None
) -> tuple[Preset, list[Finding]]:
    """Load a preset the way ``ctc-tui run`` does (placeholders filled) and check it."""
    from ctc_tui.core.preset import load_preset, preset_stem, resolve_output_dir
    from ctc_tui.core.shipped import find_preset

    path = find_preset(preset_arg)
    preset = load_preset(path, overrides)
    if output_dir:
        preset.training.output_dir = output_dir
    preset = resolve_output_dir(preset, preset_stem(path))
    return preset, run_checks(preset)


__all__ = ["Finding", "check_preset_file", "is_local", "ranks_here", "run_checks"]
