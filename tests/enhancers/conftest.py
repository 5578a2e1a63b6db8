"""Built enhancers shared by the enhancer tests (each kind is built once per session)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from serec.enhancers import Enhancer, build_enhancer


@pytest.fixture(scope="session")
def built_enhancer() -> Iterator[Callable[[str], Enhancer]]:
    """``built_enhancer(kind)``: a default instance of ``kind``, built on first use."""
    cache: dict[str, Enhancer] = {}

    def get(kind: str) -> Enhancer:
        if kind not in cache:
            cache[kind] = build_enhancer(kind, {})
        return cache[kind]

    yield get
    for enhancer in cache.values():
        enhancer.close()
