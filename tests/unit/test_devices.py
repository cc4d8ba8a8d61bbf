"""Device discovery: the parsers on captured tool outputs, and ``ctc-tui devices`` really run.

Where the captured outputs in tests/data/devices/ come from:
- ``hl-smi-*.csv``:
  ``hl-smi -Q index,module_id,name,memory.total,memory.used,utilization.aip,bus_id -f csv,...``,
  the query fields and CSV format documented in Intel Gaudi's "System Management Interface Tool (hl-smi)"
  page (docs.habana.ai, Management_and_Monitoring/Embedded_System_Tools_Guide). With ``noheader,nounits``
  the rows are bare numbers in MiB and %; without them hl-smi prints a header with ``[MiB]`` and values
  like ``98304 MiB`` (the gaudi3 file). HL-225 is Gaudi2 (96 GiB), HL-325L Gaudi3 (128 GiB). The module
  ids (what HABANA_VISIBLE_MODULES takes) follow the board's module numbering, not the PCI order, so they
  are written here as a permutation of the indices.
- ``hl-smi-gaudi2-8-table.txt``: plain ``hl-smi`` on an 8 x Gaudi2 node, laid out as the tool prints its
  summary; its "Compute Processes" section (AIP, PID, Type, Process name, Usage) lists one busy card.
- ``nvidia-smi-*.csv``: ``nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu
  --format=csv,noheader,nounits`` and ``--query-compute-apps=gpu_uuid,pid,process_name,used_memory``, the
  formats in nvidia-smi(1) ("--format=csv", "noheader", "nounits"; "[N/A]" for unsupported fields).
"""

from __future__ import annotations

import pytest

from ctc_tui.devices import (
    HL_SMI_FIELDS_NO_MODULE,
    CpuInfo,
    Detected,
    ToolOutputError,
    free_hpu_modules,
    gaudi_model,
    parse_hl_smi_csv,
    parse_hl_smi_processes,
    parse_nvidia_smi_apps,
    parse_nvidia_smi_gpus,
)
from tests.conftest import REPO

DATA = REPO / "tests" / "data" / "devices"
MIB = 1024 * 1024


def captured(name: str) -> str:
    return (DATA / name).read_text()


# -- parsers ------------------------------------------------------------------------------------------


def test_hl_smi_csv_of_an_8_card_gaudi2_node():
    cards = parse_hl_smi_csv(captured("hl-smi-gaudi2-8.csv"))
    assert [c.index for c in cards] == list(range(8))
    assert {c.model for c in cards} == {"Gaudi2"} and {c.kind for c in cards} == {"hpu"}
    assert (
        cards[0].name == "HL-225"
        and cards[0].memory_total == 98304 * MIB
        and cards[0].memory_used == 768 * MIB
    )
    assert cards[3].utilisation == 98 and cards[3].memory_used == 96564 * MIB
    assert cards[7].bus_id == "0000:b4:00.0"
    assert [c.module_id for c in cards] == [3, 1, 0, 2, 7, 5, 4, 6]


def test_hl_smi_csv_without_module_ids():
    """An hl-smi too old for module_id is asked for the other fields; the cards have no module id."""
    old = "\n".join(
        ", ".join(cell for i, cell in enumerate(line.split(", ")) if i != 1)
        for line in captured("hl-smi-gaudi2-8.csv").splitlines()
    )
    cards = parse_hl_smi_csv(old, HL_SMI_FIELDS_NO_MODULE)
    assert len(cards) == 8 and cards[3].memory_used == 96564 * MIB and {c.module_id for c in cards} == {None}
    with pytest.raises(ToolOutputError):
        parse_hl_smi_csv(old)  # six values where seven were asked for


def test_free_modules_for_habana_visible_modules():
    cards = parse_hl_smi_csv(captured("hl-smi-gaudi2-8.csv"))
    found = Detected(
        devices=cards,
        cpu=CpuInfo(
            sockets=2, physical_cores=80, logical_cpus=160, memory_total=2**40, memory_available=2**39
        ),
    )
    assert free_hpu_modules(found, 2) is None  # all free: the stack's own mapping is fine
    cards[0].busy_pids = [1234]
    assert free_hpu_modules(found, 2) == [0, 1]  # cards 1 and 2 (modules 1 and 0), not busy card 0
    assert free_hpu_modules(found, 7) == [0, 1, 2, 4, 5, 6, 7]
    assert free_hpu_modules(found, 8) is None  # too few free: the check reports it
    cards[1].module_id = None
    assert free_hpu_modules(found, 2) is None  # unknown module id: nothing is guessed


def test_hl_smi_csv_with_header_and_units():
    cards = parse_hl_smi_csv(captured("hl-smi-gaudi3-2-header-units.csv"))
    assert [(c.index, c.model) for c in cards] == [(0, "Gaudi3"), (1, "Gaudi3")]
    assert cards[1].memory_total == 131072 * MIB and cards[1].memory_used == 17538 * MIB
    assert cards[1].utilisation == 17


def test_hl_smi_process_table_names_the_busy_card():
    assert parse_hl_smi_processes(captured("hl-smi-gaudi2-8-table.txt")) == {3: [107684]}
    assert parse_hl_smi_processes("no such section here") == {}


@pytest.mark.parametrize(
    "name, model",
    [
        ("HL-205", "Gaudi1"),
        ("HL-225", "Gaudi2"),
        ("HL-225H", "Gaudi2"),
        ("HL-288E", "Gaudi2"),
        ("HL-325L", "Gaudi3"),
        ("HL-338", "Gaudi3"),
        ("Gaudi2", "Gaudi2"),
        ("HL-100", "Goya"),
        ("mystery", "mystery"),
    ],
)
def test_gaudi_generation_from_the_product_name(name, model):
    assert gaudi_model(name) == model


@pytest.mark.parametrize(
    "text",
    [
        captured("hl-smi-malformed.txt"),
        "0, HL-225, 98304\n",  # too few fields
        "zero, HL-225, 98304, 768, 0, 0000:19:00.0\n",  # not an index
        "0, HL-225, lots, 768, 0, 0000:19:00.0\n",  # not a number
    ],
)
def test_malformed_hl_smi_output_is_a_clear_error(text):
    with pytest.raises(ToolOutputError):
        parse_hl_smi_csv(text)


def test_nvidia_smi_gpus_and_their_processes():
    gpus = parse_nvidia_smi_gpus(captured("nvidia-smi-2gpu.csv"))
    assert [(g.index, g.kind, g.name) for g in gpus] == [
        (0, "gpu", "NVIDIA H100 80GB HBM3"),
        (1, "gpu", "NVIDIA H100 80GB HBM3"),
    ]
    assert gpus[0].memory_total == 81559 * MIB and gpus[0].utilisation == 97
    apps = parse_nvidia_smi_apps(captured("nvidia-smi-2gpu-apps.csv"))
    assert apps == {gpus[0].uuid: [48213]}
    assert parse_nvidia_smi_apps("") == {} and parse_nvidia_smi_apps("No running processes found\n") == {}


def test_nvidia_smi_not_available_fields_are_none():
    (gpu,) = parse_nvidia_smi_gpus(captured("nvidia-smi-na.csv"))
    assert gpu.utilisation is None and gpu.memory_total == 24576 * MIB


def test_empty_output_means_no_cards():
    assert parse_hl_smi_csv("") == [] and parse_nvidia_smi_gpus("\n") == []


# -- the real command ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "text", "where"),
    [
        (parse_hl_smi_csv, "0, 1, HL-225, 98304, lots, 0, 0000:19:00.0\n", "line 1 memory.used"),
        (parse_nvidia_smi_gpus, "0, NVIDIA A100, GPU-1, 81920, 0, lots\n", "line 1 utilization.gpu"),
        (
            parse_hl_smi_csv,
            "0, 1, HL-225, 98304, 768, 0, 0000:19:00.0\n1, x, HL-225, 1, 1, 0, b\n",
            "line 2 module_id",
        ),
    ],
)
def test_both_tools_card_tables_name_the_line_and_column_of_a_bad_value(parse, text, where):
    """hl-smi's and nvidia-smi's tables go through one reader: the same rules, the same messages."""
    with pytest.raises(ToolOutputError, match=where):
        parse(text)
