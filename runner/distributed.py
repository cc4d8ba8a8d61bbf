"""Rank discovery, the same under every launcher.

torchrun and the DeepSpeed launcher set RANK / WORLD_SIZE / LOCAL_RANK; mpirun sets only
OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK (and PMI_* under other MPIs). On Gaudi the Habana stack
maps them, but nothing else does, so each rank maps them itself here, before torch.distributed starts.
"""

from __future__ import annotations

import os
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
    "LOCAL_WORLD_SIZE": ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"),
}


def setup(environ: "os._Environ[str] | dict[str, str] | None" = None) -> DistInfo:
    """Fill RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT defaults) from whatever launched us."""
    env = os.environ if environ is None else environ
    for target, sources in _SOURCES.items():
        if target not in env:
            for name in sources:
                if env.get(name, "").isdigit():
                    env[target] = env[name]
                    break
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
