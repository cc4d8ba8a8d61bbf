"""What this machine can train on: Gaudi cards (HPUs), NVIDIA GPUs and the CPU.

Used by ``ctc-tui devices``, ``ctc-tui check`` and the wizard's device cards. Standard library and
psutil only (never torch: start-up must stay instant). Sources, best first:

- HPUs: ``pyhlml`` (habana-pyhlml, Intel's Python binding of HLML) when it is installed, else ``hl-smi``
  CSV queries (``hl-smi -Q index,name,... -f csv,noheader,nounits``); the processes holding a card come
  from the "Compute Processes" part of plain ``hl-smi``.
- GPUs: ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` and ``--query-compute-apps``.
- CPU: sockets and cores from ``lscpu`` (launchers.read_topology), logical CPUs and memory from psutil.

Every tool runs with a timeout. A missing tool means "none of those here"; a slow tool or one whose
output cannot be read becomes a note ("could not read hl-smi output: ..."), never a traceback. The
parsers are pure functions of the tool's text, so they are tested on captured outputs; hl-smi's and
nvidia-smi's CSV card tables are read by one reader (``read_card_table``), told each tool's columns.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

#: Seconds each external tool may take before it is given up on.
TOOL_TIMEOUT = 4.0
MIB = 1024 * 1024

HL_SMI_FIELDS = ("index", "module_id", "name", "memory.total", "memory.used", "utilization.aip", "bus_id")
#: What an hl-smi too old to know module_id is asked instead.
HL_SMI_FIELDS_NO_MODULE = tuple(f for f in HL_SMI_FIELDS if f != "module_id")
NVIDIA_SMI_FIELDS = ("index", "name", "uuid", "memory.total", "memory.used", "utilization.gpu")
NVIDIA_APP_FIELDS = ("gpu_uuid", "pid", "process_name", "used_memory")


class ToolOutputError(ValueError):
    """A tool printed something its parser cannot read; the message says where."""


@dataclass
class Device:
    """One accelerator card."""

    kind: str  # "hpu" or "gpu"
    index: int
    name: str  # as the tool names it: "HL-225", "NVIDIA H100 80GB HBM3"
    model: str  # "Gaudi2", ...; for a GPU the same as name
    memory_total: int | None = None  # bytes
    memory_used: int | None = None  # bytes
    utilisation: float | None = None  # percent
    busy_pids: list[int] = field(default_factory=list)
    bus_id: str | None = None
    uuid: str | None = None
    module_id: int | None = None  # Gaudi: the id HABANA_VISIBLE_MODULES takes (not the same as index)

    @property
    def busy(self) -> bool:
        """Some process holds this card (as far as the tool can see: in a container it may see none)."""
        return bool(self.busy_pids)

    @property
    def label(self) -> str:
        return f"{self.kind.upper()} {self.index}"


@dataclass
class CpuInfo:
    sockets: int
    physical_cores: int
    logical_cpus: int
    memory_total: int  # bytes
    memory_available: int  # bytes
    model: str | None = None


@dataclass
class Detected:
    """Everything ``detect()`` found, plus notes on what it could not read."""

    devices: list[Device]
    cpu: CpuInfo
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(
        default_factory=dict
    )  # "hpu" -> "pyhlml" | "hl-smi"; "gpu" -> "nvidia-smi"

    @property
    def hpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "hpu"]

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "gpu"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- small helpers ------------------------------------------------------------------------------------

_MISSING = {"", "n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", "unknown", "-"}
_UNIT = re.compile(r"^\s*(?P<number>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z%]*)\s*$")
_UNIT_FACTORS = {
    "": MIB,
    "mib": MIB,
    "mb": MIB,
    "gib": 1024 * MIB,
    "gb": 1024 * MIB,
    "kib": 1024,
    "kb": 1024,
    "b": 1,
    "bytes": 1,
}


def _is_missing(text: str) -> bool:
    return text.strip().lower() in _MISSING


def _number(text: str, what: str) -> float | None:
    """A number with an optional unit ("98304", "98304 MiB", "0 %"); None for N/A."""
    if _is_missing(text):
        return None
    match = _UNIT.match(text)
    if not match:
        raise ToolOutputError(f"{what}: expected a number, got {text.strip()!r}")
    return float(match["number"])


def _mib_bytes(text: str, what: str) -> int | None:
    """Memory as the SMI tools print it (MiB unless a unit says otherwise), in bytes."""
    if _is_missing(text):
        return None
    match = _UNIT.match(text)
    if not match:
        raise ToolOutputError(f"{what}: expected an amount of memory, got {text.strip()!r}")
    factor = _UNIT_FACTORS.get(match["unit"].lower())
    if factor is None:
        raise ToolOutputError(f"{what}: unknown memory unit {match['unit']!r}")
    return int(float(match["number"]) * factor)


def _csv_rows(text: str, fields: tuple[str, ...], tool: str) -> list[dict[str, str]]:
    """Rows of ``--format=csv`` output, with or without its header line, keyed by query field."""
    rows = []
    lines = [line for line in text.splitlines() if line.strip()]
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True), 1):
        cells = [c.strip() for c in row]
        if number == 1 and cells and cells[0].split(" [")[0].strip().lower() == fields[0]:
            continue  # the header ("index, name, memory.total [MiB], ...")
        if len(cells) != len(fields):
            raise ToolOutputError(
                f"line {number}: expected {len(fields)} comma-separated values "
                f"({', '.join(fields)}), got {len(cells)}"
            )
        rows.append(dict(zip(fields, cells)))
    return rows


def _index(text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise ToolOutputError(f"{what}: expected a card index, got {text.strip()!r}")
    return int(text)


@dataclass(frozen=True)
class CardColumns:
    """How one tool's CSV query names a card's columns, beyond those both tools share (``index``,
    ``name``, ``uuid``, ``memory.total``, ``memory.used``, and ``module_id`` where asked for)."""

    tool: str  # as messages name it
    kind: str  # the Device kind it lists: "hpu" or "gpu"
    utilisation: str  # "utilization.aip" (hl-smi), "utilization.gpu" (nvidia-smi)
    bus_id: str  # "bus_id" (hl-smi), "pci.bus_id" (nvidia-smi)
    model_of: Callable[[str], str]  # the product name -> the model shown ("HL-225" -> "Gaudi2")


def read_card_table(text: str, fields: tuple[str, ...], columns: CardColumns) -> list[Device]:
    """One Device per row of a tool's CSV card query (``fields`` in the order asked for); the one reader
    of hl-smi's and nvidia-smi's tables. Raises ToolOutputError, naming the line, on a value it cannot
    read; an empty output is no card."""
    if not text.strip():
        return []
    rows = _csv_rows(text, fields, columns.tool)
    return [_card(row, f"line {number}", number - 1, columns) for number, row in enumerate(rows, 1)]


def _card(row: dict[str, str], where: str, position: int, columns: CardColumns) -> Device:
    def optional(key: str, read: Callable[[str, str], Any]) -> Any:
        return read(row[key], f"{where} {key}") if key in row else None

    name = row.get("name", "")
    return Device(
        kind=columns.kind,
        index=_index(row.get("index", str(position)), f"{where} index"),
        name=name,
        model=columns.model_of(name),
        memory_total=optional("memory.total", _mib_bytes),
        memory_used=optional("memory.used", _mib_bytes),
        utilisation=optional(columns.utilisation, _number),
        bus_id=row.get(columns.bus_id) or None,
        uuid=row.get("uuid") or None,
        module_id=optional("module_id", _index),
    )


# -- Gaudi --------------------------------------------------------------------------------------------

_HL_NAME = re.compile(r"HL-?(?P<gen>\d)(?P<rest>\d\d)", re.IGNORECASE)


def gaudi_model(name: str) -> str:
    """The Gaudi generation of a product name: HL-205 -> Gaudi1, HL-225/HL-288 -> Gaudi2, HL-325/HL-338
    -> Gaudi3 (HL-1xx are Goya inference cards). Unknown names are returned as they are."""
    match = _HL_NAME.search(name or "")
    if not match:
        lowered = (name or "").lower()
        for generation in ("3", "2", "1"):
            if f"gaudi{generation}" in lowered.replace(" ", "") or f"gaudi {generation}" in lowered:
                return f"Gaudi{generation}"
        return "Gaudi1" if lowered.strip() == "gaudi" else (name or "unknown")
    gen, rest = match["gen"], match["rest"]
    if gen == "1":
        return "Goya"
    if gen == "2":
        return "Gaudi1" if rest.startswith(("0", "1")) else "Gaudi2"
    if gen == "3":
        return "Gaudi3"
    return name


HL_SMI_COLUMNS = CardColumns("hl-smi", "hpu", "utilization.aip", "bus_id", gaudi_model)


def parse_hl_smi_csv(text: str, fields: tuple[str, ...] = HL_SMI_FIELDS) -> list[Device]:
    """``hl-smi -Q <fields> -f csv[,noheader][,nounits]`` -> one Device per card.

    Raises ToolOutputError when the text is not that table."""
    return read_card_table(text, fields, HL_SMI_COLUMNS)


def parse_hl_smi_processes(text: str) -> dict[int, list[int]]:
    """The "Compute Processes" section of plain ``hl-smi``: card index (the AIP column) -> PIDs.

    Rows look like ``|   0        12345     C   python3      96000MiB   |``; idle cards show N/A.
    An output without that section gives {} (hl-smi shows it only where it can see processes)."""
    busy: dict[int, list[int]] = {}
    in_section = False
    for line in text.splitlines():
        if "Compute Processes" in line:
            in_section = True
            continue
        if not in_section:
            continue
        cells = line.strip().strip("|").split()
        if len(cells) >= 2 and cells[0].isdigit() and cells[1].isdigit():
            busy.setdefault(int(cells[0]), []).append(int(cells[1]))
    return busy


def _hpus_from_pyhlml() -> list[Device]:
    import pyhlml  # habana-pyhlml: ships with the Gaudi software stack

    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    pyhlml.hlmlInit()
    try:
        devices = []
        for index in range(int(pyhlml.hlmlDeviceGetCount())):
            handle = pyhlml.hlmlDeviceGetHandleByIndex(index)
            name = text(pyhlml.hlmlDeviceGetName(handle))
            memory = pyhlml.hlmlDeviceGetMemoryInfo(handle)
            try:
                bus_id: str | None = text(pyhlml.hlmlDeviceGetPCIInfo(handle).bus_id)
            except Exception:  # noqa: BLE001  (optional detail; binding versions differ)
                bus_id = None
            try:
                module_id: int | None = int(pyhlml.hlmlDeviceGetModuleID(handle))
            except Exception:  # noqa: BLE001  (older bindings lack it)
                module_id = None
            devices.append(
                Device(
                    kind="hpu",
                    index=index,
                    name=name,
                    model=gaudi_model(name),
                    memory_total=int(memory.total),
                    memory_used=int(memory.used),
                    utilisation=float(pyhlml.hlmlDeviceGetUtilizationRates(handle)),
                    bus_id=bus_id,
                    module_id=module_id,
                )
            )
        return devices
    finally:
        pyhlml.hlmlShutdown()


# -- NVIDIA -------------------------------------------------------------------------------------------


NVIDIA_SMI_COLUMNS = CardColumns("nvidia-smi", "gpu", "utilization.gpu", "pci.bus_id", str)


def parse_nvidia_smi_gpus(text: str, fields: tuple[str, ...] = NVIDIA_SMI_FIELDS) -> list[Device]:
    """``nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`` -> one Device per GPU."""
    return read_card_table(text, fields, NVIDIA_SMI_COLUMNS)


def parse_nvidia_smi_apps(text: str, fields: tuple[str, ...] = NVIDIA_APP_FIELDS) -> dict[str, list[int]]:
    """``nvidia-smi --query-compute-apps=<fields> --format=csv,noheader,nounits`` -> GPU uuid (or index)
    -> PIDs. No compute processes prints nothing (older drivers: "No running processes found")."""
    if not text.strip() or "no running" in text.lower():
        return {}
    busy: dict[str, list[int]] = {}
    key = "gpu_uuid" if "gpu_uuid" in fields else fields[0]
    for number, row in enumerate(_csv_rows(text, fields, "nvidia-smi"), 1):
        pid = row.get("pid", "").strip()
        if not pid.isdigit():
            raise ToolOutputError(f"line {number}: expected a process id, got {pid!r}")
        busy.setdefault(row[key], []).append(int(pid))
    return busy


# -- running the tools --------------------------------------------------------------------------------


def run_bounded(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a tool with its output captured; past ``timeout`` seconds kill it *and anything it started*
    (its own process group: a wrapper script's children would otherwise keep the pipes open), then
    raise subprocess.TimeoutExpired."""
    import os
    import signal

    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _run_tool(argv: list[str], timeout: float) -> tuple[str | None, str | None]:
    """(stdout, None) on success; (None, None) when the tool is not installed; (None, note) otherwise."""
    path = shutil.which(argv[0])
    if path is None:
        return None, None
    try:
        proc = run_bounded([path, *argv[1:]], timeout)
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not answer within {timeout:g} s"
    except OSError as exc:
        return None, f"could not run {argv[0]}: {exc.strerror or exc}"
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return None, f"{argv[0]} failed (exit {proc.returncode}{': ' + detail[0][:160] if detail else ''})"
    return proc.stdout, None


def _with_timeout(work: Callable[[], Any], timeout: float) -> Any:
    """Run ``work`` in a daemon thread; raise TimeoutError if it has not finished in time (a native
    library call cannot be interrupted, but it no longer holds up the caller)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            box["error"] = exc

    thread = threading.Thread(target=target, name="ctc-tui-detect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _pyhlml_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("pyhlml") is not None
    except (ImportError, ValueError):
        return False


def detect_hpus(timeout: float = TOOL_TIMEOUT) -> tuple[list[Device], list[str], str | None]:
    """(cards, notes, source) — source is "pyhlml", "hl-smi" or None when no Gaudi tool is present."""
    notes: list[str] = []
    devices: list[Device] = []
    source: str | None = None
    if _pyhlml_installed():
        try:
            devices = _with_timeout(_hpus_from_pyhlml, timeout)
            source = "pyhlml"
        except Exception as exc:  # noqa: BLE001  (HLML errors are many types; hl-smi is the fallback)
            notes.append(
                f"could not read the cards through pyhlml ({type(exc).__name__}: {exc}); trying hl-smi"
            )
    if source is None:
        fields = HL_SMI_FIELDS
        out, note = _run_tool(["hl-smi", "-Q", ",".join(fields), "-f", "csv,noheader,nounits"], timeout)
        if note and "did not answer" not in note:  # perhaps an hl-smi too old for module_id
            fields = HL_SMI_FIELDS_NO_MODULE
            out, note = _run_tool(["hl-smi", "-Q", ",".join(fields), "-f", "csv,noheader,nounits"], timeout)
        if note:
            notes.append(note)
        if out is not None:
            try:
                devices = parse_hl_smi_csv(out, fields)
                source = "hl-smi"
            except ToolOutputError as exc:
                notes.append(f"could not read hl-smi output ({exc}); run hl-smi to see what it says")
    if devices and shutil.which("hl-smi"):
        table, _ = _run_tool(["hl-smi"], timeout)
        if table:
            for index, pids in parse_hl_smi_processes(table).items():
                for device in devices:
                    if device.index == index:
                        device.busy_pids = pids
    return devices, notes, source


def detect_gpus(timeout: float = TOOL_TIMEOUT) -> tuple[list[Device], list[str], str | None]:
    notes: list[str] = []
    out, note = _run_tool(
        ["nvidia-smi", f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"], timeout
    )
    if note:
        notes.append(note)
    if out is None:
        return [], notes, None
    try:
        devices = parse_nvidia_smi_gpus(out)
    except ToolOutputError as exc:
        return (
            [],
            [*notes, f"could not read nvidia-smi output ({exc}); run nvidia-smi to see what it says"],
            None,
        )
    apps, note = _run_tool(
        [
            "nvidia-smi",
            f"--query-compute-apps={','.join(NVIDIA_APP_FIELDS)}",
            "--format=csv,noheader,nounits",
        ],
        timeout,
    )
    if note:
        notes.append(note)
    if apps:
        try:
            busy = parse_nvidia_smi_apps(apps)
        except ToolOutputError as exc:
            notes.append(f"could not read nvidia-smi's process list ({exc})")
            busy = {}
        for device in devices:
            device.busy_pids = busy.get(device.uuid or "", []) or busy.get(str(device.index), [])
    return devices, notes, "nvidia-smi"


def cpu_info() -> CpuInfo:
    import platform

    import psutil

    from ctc_tui.launchers.topology import read_topology

    topo = read_topology()
    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or topo.sockets * topo.cores_per_socket
    memory = psutil.virtual_memory()
    return CpuInfo(
        sockets=topo.sockets,
        physical_cores=physical,
        logical_cpus=logical,
        memory_total=int(memory.total),
        memory_available=int(memory.available),
        model=_cpu_model() or platform.processor() or None,
    )


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None


def free_hpu_modules(found: Detected, need: int) -> list[int] | None:
    """The module ids of the first ``need`` free Gaudi cards, for HABANA_VISIBLE_MODULES, when some of
    this node's cards are busy (left unset, the ranks would take modules by local rank, busy or not).
    None when no card is busy, too few are free, or a busy card's module id is unknown."""
    hpus = found.hpus
    free = [d for d in hpus if not d.busy]
    if not hpus or len(free) == len(hpus) or len(free) < need:
        return None
    chosen = [d.module_id for d in free[:need] if d.module_id is not None]
    return sorted(chosen) if len(chosen) == need else None


def detect(timeout: float = TOOL_TIMEOUT) -> Detected:
    """Every card and the CPU of this machine. HPU and GPU discovery run side by side, each tool call
    bounded by ``timeout`` seconds, so this returns within about two timeouts at worst."""
    results: dict[str, tuple[list[Device], list[str], str | None]] = {}

    def run(kind: str, probe: Callable[[float], tuple[list[Device], list[str], str | None]]) -> None:
        try:
            results[kind] = probe(timeout)
        except Exception as exc:  # noqa: BLE001  (discovery must never take the caller down)
            results[kind] = ([], [f"{kind} discovery failed: {type(exc).__name__}: {exc}"], None)

    threads = [
        threading.Thread(target=run, args=(kind, probe), daemon=True, name=f"ctc-tui-detect-{kind}")
        for kind, probe in (("hpu", detect_hpus), ("gpu", detect_gpus))
    ]
    for thread in threads:
        thread.start()
    cpu = cpu_info()
    for thread in threads:
        thread.join(3 * timeout + 1)
    devices: list[Device] = []
    notes: list[str] = []
    sources: dict[str, str] = {}
    for kind in ("hpu", "gpu"):
        found, kind_notes, source = results.get(
            kind, ([], [f"{kind} discovery did not finish in time"], None)
        )
        devices += found
        notes += kind_notes
        if source:
            sources[kind] = source
    return Detected(devices=devices, cpu=cpu, notes=notes, sources=sources)


# -- presentation -------------------------------------------------------------------------------------


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    gib = value / (1024 * MIB)
    return f"{gib:.1f} GiB" if gib >= 1 else f"{value / MIB:.0f} MiB"


def render_table(found: Detected) -> Any:
    """A rich renderable: one row per card, then the CPU line and any notes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if found.devices:
        table = Table(box=None, pad_edge=False)
        for name, justify in (
            ("card", "left"),
            ("module", "right"),
            ("model", "left"),
            ("name", "left"),
            ("memory used", "right"),
            ("util", "right"),
            ("busy", "left"),
            ("bus", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for d in found.devices:
            memory = f"{fmt_bytes(d.memory_used)} / {fmt_bytes(d.memory_total)}"
            util = "-" if d.utilisation is None else f"{d.utilisation:.0f}%"
            busy = ("pid " + ", ".join(map(str, d.busy_pids))) if d.busy_pids else "free"
            table.add_row(
                d.label,
                "-" if d.module_id is None else str(d.module_id),
                d.model,
                d.name,
                memory,
                util,
                Text(busy, style="yellow" if d.busy_pids else "green"),
                d.bus_id or "",
            )
        parts.append(table)
    else:
        parts.append(Text("no Gaudi card and no NVIDIA GPU found: runs train on the CPU", style="bold"))
    cpu = found.cpu
    parts.append(
        Text(
            f"CPU: {cpu.sockets} socket{'s' if cpu.sockets != 1 else ''}, "
            f"{cpu.physical_cores} physical cores, "
            f"{cpu.logical_cpus} logical CPUs, {fmt_bytes(cpu.memory_total)} memory "
            f"({fmt_bytes(cpu.memory_available)} available)" + (f" — {cpu.model}" if cpu.model else "")
        )
    )
    for note in found.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


__all__ = [
    "CardColumns",
    "CpuInfo",
    "Detected",
    "Device",
    "ToolOutputError",
    "cpu_info",
    "detect",
    "detect_gpus",
    "detect_hpus",
    "gaudi_model",
    "parse_hl_smi_csv",
    "parse_hl_smi_processes",
    "parse_nvidia_smi_apps",
    "parse_nvidia_smi_gpus",
    "read_card_table",
    "render_table",
]
