"""Can a request ever run? Live nodes plus the node types the autoscaler may add.

Fold and Tune trials queue for their resources, so that an autoscaler sees the demand and adds
nodes; the only request that is an error up front is one that no node, present or launchable,
can ever hold. The launchable node types come from the cluster-launcher file: the one named by
``SEREC_CLUSTER_CONFIG``, else the copy ``ray up`` leaves on the head node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

CLUSTER_CONFIG_ENV = "SEREC_CLUSTER_CONFIG"
HEAD_BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
"""Where the Ray cluster launcher writes the cluster's config on the head node."""

Shape = Mapping[str, float]


class InfeasibleRequestError(ValueError):
    """A worker's resource request fits no live node and no node type of the cluster."""


def cluster_config_path() -> Path | None:
    """The cluster-launcher file in force: ``$SEREC_CLUSTER_CONFIG`` or the head's copy."""
    named = os.environ.get(CLUSTER_CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{CLUSTER_CONFIG_ENV}={named}: no such file")
        return path
    bootstrap = HEAD_BOOTSTRAP_CONFIG.expanduser()
    return bootstrap if bootstrap.is_file() else None


def node_type_shapes(config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Declared resources of each node type that the autoscaler may launch (max_workers > 0)."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    return {name: {k: float(v) for k, v in (spec.get("resources") or {}).items()}
            for name, spec in types.items()
            if name == head or spec.get("max_workers", config.get("max_workers", 0)) > 0}


def live_node_shapes() -> dict[str, dict[str, float]]:
    """Total resources of each alive node of the connected Ray cluster."""
    import ray

    return {node["NodeID"][:12]: {k: float(v) for k, v in node["Resources"].items()}
            for node in ray.nodes() if node.get("Alive")}


def fits(request: Shape, shape: Shape) -> bool:
    return all(shape.get(key, 0.0) + 1e-9 >= amount for key, amount in request.items()
               if amount > 0)


def check_request_fits(request: Shape, what: str, live: Mapping[str, Shape] | None = None,
                       node_types: Mapping[str, Shape] | None = None) -> None:
    """Raise :class:`InfeasibleRequestError` when ``request`` (one worker's bundle) fits no
    live node and no launchable node type; otherwise the request may queue."""
    live = live_node_shapes() if live is None else live
    if node_types is None:
        path = cluster_config_path()
        node_types = {} if path is None else node_type_shapes(yaml.safe_load(path.read_text()))
    if any(fits(request, shape) for shape in (*live.values(), *node_types.values())):
        return
    have = "; ".join(f"{name}: {dict(shape)}" for name, shape in
                     [*live.items(), *((f"type {n}", s) for n, s in node_types.items())])
    hint = ("" if node_types else f" (no autoscaling node types known: set "
            f"{CLUSTER_CONFIG_ENV} to the cluster.yaml in use)")
    raise InfeasibleRequestError(
        f"{what} asks for {dict(request)} per worker, which no node can ever hold{hint}; "
        f"nodes: {have or 'none'}. Lower num_workers/cpus_per_worker or use_gpu, or add a "
        f"node type that has these resources")


def worker_bundle(cpus: float, gpus: float = 0.0, extra: Sequence[tuple[str, float]] = ()
                  ) -> dict[str, float]:
    """One worker's resource request in Ray's resource names."""
    bundle = {"CPU": float(cpus), **{k: float(v) for k, v in extra}}
    if gpus:
        bundle["GPU"] = float(gpus)
    return bundle
