"""Batching plumbing of the diffusion enhancers: chunks, buckets, OOM back-off, per-item noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serec.enhancers.batching import (
    chunk_starts,
    enhance_batched,
    is_out_of_memory,
    item_generators,
    join_chunks,
    per_item_noise,
    plan_batches,
    run_halving,
    split_chunks,
)

PARAMS = {"max_batch": 4, "max_chunk_seconds": 1.0, "chunk_overlap_seconds": 0.1, "seed": 0}


def test_chunks_cover_the_clip_and_identity_joins_back_exactly(rng):
    audio = rng.standard_normal(2_537).astype(np.float32)
    starts = chunk_starts(audio.size, 1_000, 100)
    assert starts == [0, 900, 1_537] and starts[-1] + 1_000 == audio.size
    pieces = split_chunks(audio, 1_000, 100)
    np.testing.assert_allclose(join_chunks(pieces, audio.size, 1_000, 100), audio, atol=1e-6)
    assert chunk_starts(999, 1_000, 100) == [0]


def test_batches_hold_one_bucket_each_and_respect_the_limit():
    groups = plan_batches([2, 1, 2, 2, 1, 2, 2], max_batch=2)
    assert groups == [[1, 4], [0, 2], [3, 5], [6]]


def test_out_of_memory_halves_the_batch_down_to_one_item():
    calls: list[int] = []

    def run(items, seeds):
        calls.append(len(items))
        if len(items) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return [item * 2 for item in items]

    items = [np.full(3, i, dtype=np.float32) for i in range(3)]
    out = run_halving(items, [0, 1, 2], run, "test")
    assert [o[0] for o in out] == [0, 2, 4]
    assert calls == [3, 1, 2, 1, 1]


def test_an_item_that_never_fits_raises_and_other_errors_are_not_retried():
    def oom(items, seeds):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    with pytest.raises(RuntimeError, match="allocate"):
        run_halving([np.zeros(2)], [0], oom, "test")
    calls = []

    def broken(items, seeds):
        calls.append(len(items))
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_halving([np.zeros(2)] * 4, [0] * 4, broken, "test")
    assert calls == [4]
    assert not is_out_of_memory(ValueError("out of memory"))


def test_each_row_draws_the_noise_it_would_draw_alone():
    seeds = [11, 22, 33]
    with per_item_noise(item_generators(seeds, "cpu")):
        batch = torch.randn_like(torch.zeros(3, 2, 5, dtype=torch.complex64))
    for row, seed in enumerate(seeds):
        with per_item_noise(item_generators([seed], "cpu")):
            alone = torch.randn_like(torch.zeros(1, 2, 5, dtype=torch.complex64))
        torch.testing.assert_close(batch[row], alone[0])
    assert torch.randn_like is not None and torch.randn_like.__module__ == "torch"


def test_enhance_batched_chunks_long_clips_and_keeps_silence(rng):
    """A stand-in network (noise-free scaling) sees buckets of equal key; outputs are whole."""
    seen: list[list[int]] = []

    def run(items, seeds):
        seen.append([item.size for item in items])
        return [0.5 * item for item in items]

    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (500, 2_500, 700)]
    clips.append(np.zeros(400, dtype=np.float32))
    out = enhance_batched(clips, PARAMS, 1_000, lambda n: -(-n // 512), run, "test")
    for clip, enhanced in zip(clips, out, strict=True):
        np.testing.assert_allclose(enhanced, 0.5 * clip, atol=1e-6)
    assert all(len({-(-n // 512) for n in group}) == 1 for group in seen)
    assert sum(map(len, seen)) == 2 + 3  # two short clips + three chunks; silence skipped
