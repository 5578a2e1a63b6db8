"""Enhancers applied one after another, e.g. WPE dereverberation then DeepFilterNet3.

``steps`` lists the stages, each a kind name or a config entry (``{kind: ..., params}``); in
an ``enhancers:`` section a step may also name another entry of that section. Every stage
keeps the clip's length and alignment, so the chain does too; its measured compute time is
the total of its stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer
from serec.enhancers.registry import EnhancerSpec, parse_enhancer_spec, register_enhancer


def step_specs(owner: str, steps: Any) -> list[EnhancerSpec]:
    """Validated specs of a chain's ``steps`` (no model loading); ``ValueError`` if bad."""
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{owner}: steps must be a non-empty list of kinds or entries")
    specs = []
    for index, step in enumerate(steps):
        entry = {"kind": step} if isinstance(step, str) else step
        if not isinstance(entry, Mapping) or "kind" not in entry:
            raise ValueError(f"{owner}: step {index} must be a kind name or a mapping with "
                             f"'kind', got {step!r}")
        if "resources" in entry:
            raise ValueError(f"{owner}: step {index} must not set resources (the chain's "
                             f"resources apply to all its steps)")
        try:
            specs.append(parse_enhancer_spec(f"step{index}", entry))
        except ValueError as exc:
            raise ValueError(f"{owner}: step {index}: {exc}") from exc
    return specs


@register_enhancer("chain")
class Chain(Enhancer):
    """Sequential application of the ``steps`` enhancers, each built once per instance."""

    default_params = {"steps": []}

    @classmethod
    def check_params(cls, owner: str, params: Mapping[str, Any]) -> None:
        step_specs(owner, params["steps"])

    def setup(self) -> None:
        specs = step_specs(self.describe(self.name), self.params["steps"])
        self.steps: list[Enhancer] = []
        for index, spec in enumerate(specs):
            self.steps.append(spec.enhancer_class(f"{self.name}_step{index}", self.resources,
                                                  **spec.params))

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        for step in self.steps:
            audio = step.enhance(audio)
        return audio

    def close(self) -> None:
        for step in getattr(self, "steps", []):
            step.close()
