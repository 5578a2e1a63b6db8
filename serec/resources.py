"""What one Ray stage asks for: the resources of an enhancer, DNSMOS, feature or decode pool.

One type serves the config sections (``dnsmos:``, ``features:``, ``label.decode:``) and each
enhancer's ``resources:`` entry, so every actor pool is declared and validated the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="Resources")


@dataclass
class Resources:
    """Ray resources of one actor pool (or task stage) and how its batches are formed."""

    num_cpus: float = 0.5
    num_gpus: float = 0.0
    batch_size: int = 4
    min_actors: int = 1
    max_actors: int = 1
    memory_gb: float | None = None                 # Ray memory reservation per actor
    custom_resources: dict[str, float] | None = None  # e.g. {"a10g": 1}
    runtime_env: dict[str, Any] | None = None

    @classmethod
    def from_mapping(cls: type[R], mapping: Mapping[str, Any] | None,
                     owner: str = "stage") -> R:
        """Build from a config mapping; unknown keys or bad values raise ``ValueError``."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{owner}: 'resources' must be a mapping, got "
                             f"{type(mapping).__name__}")
        known = {f.name for f in fields(cls)}
        for key in mapping:
            if key not in known:
                raise ValueError(f"{owner}: unknown resource key {key!r}; "
                                 f"known keys: {', '.join(sorted(known))}")
        resources = cls(**dict(mapping))
        resources.validate(owner)
        return resources

    def validate(self, owner: str = "stage", section: str = "resources") -> None:
        """Check types and ranges; the ``ValueError`` names the bad key as ``section.key``."""
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{owner}: {section}.{key} {why}")

        for key in ("num_cpus", "num_gpus", "memory_gb"):
            value = getattr(self, key)
            if key == "memory_gb" and value is None:
                continue
            if not (_is_number(value) and value >= 0):
                raise bad(key, f"must be a number >= 0, got {value!r}")
        for key in ("batch_size", "min_actors", "max_actors"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, f"must be an integer >= 1, got {value!r}")
        if self.min_actors > self.max_actors:
            raise bad("min_actors", f"({self.min_actors}) must not exceed "
                                    f"{section}.max_actors ({self.max_actors})")
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise bad("runtime_env", "must be a mapping or null")
        if self.custom_resources is not None and not (
                isinstance(self.custom_resources, dict) and all(
                    _is_number(v) and v >= 0 for v in self.custom_resources.values())):
            raise bad("custom_resources", "must map names to numbers >= 0")

    def remote_args(self) -> dict[str, Any]:
        """Ray resource keywords for ``map_batches``/actors: only what is asked for."""
        args: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            args["num_gpus"] = self.num_gpus
        if self.custom_resources:
            args["resources"] = dict(self.custom_resources)
        if self.memory_gb:
            args["memory"] = int(self.memory_gb * 2**30)
        if self.runtime_env:
            args["runtime_env"] = dict(self.runtime_env)
        return args

    def actor_pool_args(self) -> dict[str, Any]:
        """``map_batches`` keywords for an actor pool of this stage over pandas batches."""
        import ray

        return dict(compute=ray.data.ActorPoolStrategy(min_size=self.min_actors,
                                                       max_size=self.max_actors),
                    batch_size=self.batch_size, batch_format="pandas", **self.remote_args())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))

