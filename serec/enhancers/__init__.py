"""Speech enhancers behind one interface, a registry of kinds, and config parsing.

Importing this package is cheap: each kind imports its heavy library only when built.
"""

from serec.enhancers.base import (
    EnhancementError,
    Enhancer,
    MissingDependencyError,
)
from serec.enhancers.registry import (
    EnhancerSpec,
    available_kinds,
    build_enhancer,
    enhancer_class,
    parse_enhancer_spec,
    parse_enhancer_specs,
    register_enhancer,
)

__all__ = [
    "EnhancementError",
    "Enhancer",
    "EnhancerSpec",
    "MissingDependencyError",
    "available_kinds",
    "build_enhancer",
    "enhancer_class",
    "parse_enhancer_spec",
    "parse_enhancer_specs",
    "register_enhancer",
]
