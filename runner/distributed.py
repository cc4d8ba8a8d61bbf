"""Rank discovery, the same under every launcher.

torchrun and the DeepSpeed launcher set RANK / WORLD_SIZE / LOCAL_RANK; mpirun sets only
OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK (and PMI_* under other MPIs); srun sets SLURM_PROCID /
SLURM_NTASKS / SLURM_LOCALID, and its tasks per node in a compressed list. On Gaudi the Habana stack
maps them, but nothing else does, so each rank maps them itself here, before torch.distributed starts.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    host: str


_SOURCES = {
    "RANK": ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"),
    "WORLD_SIZE": ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"),
    "LOCAL_RANK": ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"),
    "LOCAL_WORLD_SIZE": ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"),
}
#: Slurm's tasks per node, most specific first, in its compressed form (``2(x3),1``: 2 tasks on each of
#: three nodes, then 1); SLURM_NODEID picks this node's count.
_SLURM_TASKS_PER_NODE = ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE")


def slurm_tasks_on_node(env: os._Environ[str] | dict[str, str]) -> int | None:
    """This node's task count under srun, from the compressed per-node list and SLURM_NODEID."""
    node = env.get("SLURM_NODEID", "0")
    for name in _SLURM_TASKS_PER_NODE:
        counts: list[int] = []
        for item in env.get(name, "").split(","):
            match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
            if not match:
                counts = []
                break
            counts += [int(match.group(1))] * int(match.group(2) or 1)
        if counts and node.isdigit() and int(node) < len(counts):
            return counts[int(node)]
    return None


def setup(environ: "os._Environ[str] | dict[str, str] | None" = None) -> DistInfo:
    """Fill RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT defaults) from whatever launched us."""
    env = os.environ if environ is None else environ
    for target, sources in _SOURCES.items():
        if target not in env:
            for name in sources:
                if env.get(name, "").isdigit():
                    env[target] = env[name]
                    break
    if "LOCAL_WORLD_SIZE" not in env and "SLURM_PROCID" in env:
        local = slurm_tasks_on_node(env)
        if local:
            env["LOCAL_WORLD_SIZE"] = str(local)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        env.setdefault("MASTER_ADDR", "localhost")
        env.setdefault("MASTER_PORT", "29500")
    return DistInfo(
        rank=int(env.get("RANK", "0") or 0),
        world_size=world,
        local_rank=int(env.get("LOCAL_RANK", "0") or 0),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world)) or world),
        host=socket.gethostname(),
    )
