"""Who runs the heavy work: this process (local.py) or a Ray cluster (ray.py), behind one Distributor
signature (base.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Distributor


def make_distributor(cfg) -> Distributor:
    """The distributor a RunConfig asks for (not connected yet: see RayDistributor.connect)."""
    if cfg.distributor == "local":
        from .local import LocalDistributor

        return LocalDistributor()
    from .ray import RayDistributor

    return RayDistributor(cfg.ray_address, workers=cfg.workers, cpus_per_worker=cfg.cpus_per_worker,
                          gpus_per_worker=cfg.gpus_per_worker)
