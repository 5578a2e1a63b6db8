"""What one Ray stage asks for: the resources of an enhancer, DNSMOS, feature or decode pool.

One type serves the config sections (``dnsmos:``, ``features:``, ``label.decode:``) and each
enhancer's ``resources:`` entry, so every actor pool is declared and validated the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from serec.errors import ConfigError
from serec.typed_config import at_least, check_fields, from_mapping

R = TypeVar("R", bound="Resources")


@dataclass
class Resources:
    """Ray resources of one actor pool (or task stage) and how its batches are formed."""

    num_cpus: float = field(default=0.5, metadata=at_least(0))
    num_gpus: float = field(default=0.0, metadata=at_least(0))
    batch_size: int = field(default=4, metadata=at_least(1))
    min_actors: int = field(default=1, metadata=at_least(1))
    max_actors: int = field(default=1, metadata=at_least(1))
    # A task stage's most tasks at once (None: as many as its resources allow); each task
    # slot is a worker process that imports the stage's modules, which costs on small nodes.
    max_tasks: int | None = field(default=None, metadata=at_least(1))
    memory_gb: float | None = field(default=None, metadata=at_least(0))  # per actor
    custom_resources: dict[str, float] | None = None  # e.g. {"a10g": 1}
    runtime_env: dict[str, Any] | None = None

    @classmethod
    def from_mapping(cls: type[R], mapping: Mapping[str, Any] | None,
                     owner: str = "stage") -> R:
        """Build an enhancer's ``resources:`` entry; errors start with ``owner``."""
        try:
            return from_mapping(cls, mapping, "resources")
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {exc}") from None

    def check(self, key: str) -> None:
        """Checks across fields (run by the config converter)."""
        if self.min_actors > self.max_actors:
            raise ConfigError(f"config key '{key}.min_actors' ({self.min_actors}) must not "
                              f"exceed '{key}.max_actors' ({self.max_actors})")
        for name, amount in (self.custom_resources or {}).items():
            if amount < 0:
                raise ConfigError(f"config key '{key}.custom_resources.{name}' must be >= 0, "
                                  f"got {amount!r}")

    def validate(self, owner: str = "stage", section: str = "resources") -> None:
        """Check an already built instance like a loaded config; errors start with ``owner``."""
        try:
            check_fields(self, section)
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {exc}") from None

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

    def task_args(self) -> dict[str, Any]:
        """``map_batches`` keywords for a task stage: its resources and ``max_tasks``."""
        import ray

        args = self.remote_args()
        if self.max_tasks:
            args["compute"] = ray.data.TaskPoolStrategy(size=self.max_tasks)
        return args

    def actor_pool_args(self) -> dict[str, Any]:
        """``map_batches`` keywords for an actor pool of this stage over pandas batches."""
        import ray

        return dict(compute=ray.data.ActorPoolStrategy(min_size=self.min_actors,
                                                       max_size=self.max_actors),
                    batch_size=self.batch_size, batch_format="pandas", **self.remote_args())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

