"""Batched sampling for the diffusion enhancers (SGMSE+, StoRM, CDiffuSE).

A diffusion enhancer runs tens of network passes per clip, so a GPU is only busy when one pass
carries several clips. :func:`enhance_batched` turns a Ray batch of clips into network batches
such that **a clip's output never depends on its batch-mates**:

- long clips are cut into overlapping chunks (``max_chunk_seconds``), each enhanced as an
  item of its own and cross-faded back, so a long recording does not run out of memory;
- items are bucketed by their padded size, which depends on the item alone (a multiple of the
  enhancer's ``bucket`` quantum), so an item sees the same padding alone and in any batch;
- every item draws its diffusion noise from its own generator, seeded from its samples
  (:func:`~serec.enhancers.checkpoints.clip_seed`), via :func:`per_item_noise`;
- an out-of-memory error on a batch retries it as two halves, down to single items; a single
  item that still does not fit raises, and the label stage records the error for that clip.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from serec.enhancers.base import Enhancer
from serec.enhancers.checkpoints import check_positive_int, clip_seed, peak

log = logging.getLogger(__name__)

BATCH_PARAMS: dict[str, Any] = {
    "max_batch": 16,               # items per network batch (halved on out-of-memory)
    "max_chunk_seconds": 20.0,     # longer inputs are enhanced in overlapping chunks
    "chunk_overlap_seconds": 0.5,  # cross-faded overlap between consecutive chunks
}
"""Parameters every batched diffusion enhancer accepts, with their defaults."""

GroupRunner = Callable[[list[np.ndarray], list[int]], list[np.ndarray]]
"""Enhances items of one bucket (native-rate float32, non-silent) given their seeds."""


def check_batch_params(owner: str, params: Mapping[str, Any]) -> None:
    """Range checks of :data:`BATCH_PARAMS` (types are checked against the defaults)."""
    check_positive_int(owner, params, "max_batch")
    chunk, overlap = params["max_chunk_seconds"], params["chunk_overlap_seconds"]
    if chunk <= 0 or overlap < 0 or overlap * 2 >= chunk:
        raise ValueError(f"{owner}: need max_chunk_seconds > 2 * chunk_overlap_seconds >= 0, "
                         f"got {chunk} and {overlap}")


# ----- chunking ---------------------------------------------------------------------------
def chunk_starts(length: int, chunk: int, overlap: int) -> list[int]:
    """Start samples of chunks of ``chunk`` samples overlapping by ``overlap``; the last chunk
    ends at ``length`` (one chunk when the clip is short enough)."""
    if length <= chunk:
        return [0]
    hop = chunk - overlap
    starts = list(range(0, length - chunk, hop))
    return [*starts, length - chunk]


def split_chunks(audio: np.ndarray, chunk: int, overlap: int) -> list[np.ndarray]:
    return [audio[s:s + chunk] for s in chunk_starts(audio.size, chunk, overlap)]


def join_chunks(pieces: Sequence[np.ndarray], length: int, chunk: int,
                overlap: int) -> np.ndarray:
    """Overlap-add enhanced chunks with linear cross-fades (weights sum to one everywhere)."""
    starts = chunk_starts(length, chunk, overlap)
    if len(starts) == 1:
        return np.asarray(pieces[0], dtype=np.float32)
    total = np.zeros(length, dtype=np.float64)
    weight = np.zeros(length, dtype=np.float64)
    for start, piece in zip(starts, pieces, strict=True):
        ramp = np.ones(piece.size)
        fade = min(overlap, piece.size // 2)
        if fade:
            ramp[:fade] = np.linspace(0.0, 1.0, fade + 2)[1:-1]
            ramp[-fade:] = ramp[:fade][::-1]
        total[start:start + piece.size] += ramp * piece
        weight[start:start + piece.size] += ramp
    return (total / np.maximum(weight, 1e-12)).astype(np.float32)


# ----- bucketing and out-of-memory back-off ------------------------------------------------
def plan_batches(keys: Sequence[int], max_batch: int) -> list[list[int]]:
    """Indices grouped by bucket key (equal padded size), each group at most ``max_batch``."""
    buckets: dict[int, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        buckets[key].append(index)
    return [members[i:i + max_batch] for _, members in sorted(buckets.items())
            for i in range(0, len(members), max_batch)]


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or an allocator failure reported as a RuntimeError."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def release_cached_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_halving(items: list[np.ndarray], seeds: list[int], run: GroupRunner,
                owner: str) -> list[np.ndarray]:
    """``run(items, seeds)``, split in halves on out-of-memory until single items."""
    try:
        return run(items, seeds)
    except Exception as exc:
        if not is_out_of_memory(exc) or len(items) == 1:
            raise
        release_cached_memory()
        half = len(items) // 2
        log.warning("%s: out of memory on a batch of %d, retrying as %d + %d", owner,
                    len(items), half, len(items) - half)
        return (run_halving(items[:half], seeds[:half], run, owner)
                + run_halving(items[half:], seeds[half:], run, owner))


def enhance_batched(audios: Sequence[np.ndarray], params: Mapping[str, Any], native_sr: int,
                    bucket_key: Callable[[int], int], run: GroupRunner,
                    owner: str) -> list[np.ndarray]:
    """Enhance native-rate clips in network batches (see the module docstring).

    ``bucket_key(n)`` is the padded size of an ``n``-sample item; ``run`` enhances one group of
    items of equal key. Silent items come back as zeros (upstream divides by the peak).
    """
    chunk = int(round(params["max_chunk_seconds"] * native_sr))
    overlap = int(round(params["chunk_overlap_seconds"] * native_sr))
    items: list[np.ndarray] = []
    owners: list[int] = []
    for clip_index, audio in enumerate(audios):
        for piece in split_chunks(audio, chunk, overlap):
            items.append(piece)
            owners.append(clip_index)
    results: list[np.ndarray | None] = [None] * len(items)
    live = []
    for index, item in enumerate(items):
        if peak(item) == 0.0:
            results[index] = np.zeros_like(item)
        else:
            live.append(index)
    groups = plan_batches([bucket_key(items[i].size) for i in live], params["max_batch"])
    for group in groups:
        members = [live[g] for g in group]
        enhanced = run_halving([items[m] for m in members],
                               [clip_seed(items[m], params["seed"]) for m in members], run, owner)
        for member, out in zip(members, enhanced, strict=True):
            results[member] = np.asarray(out, dtype=np.float32).reshape(-1)[:items[member].size]
    pieces: dict[int, list[np.ndarray]] = defaultdict(list)
    for owner_index, result in zip(owners, results, strict=True):
        pieces[owner_index].append(result)
    return [join_chunks(pieces[i], audio.size, chunk, overlap)
            for i, audio in enumerate(audios)]


def padded_size(n: int, quantum: int) -> int:
    """``n`` rounded up to a multiple of ``quantum``."""
    return -(-n // quantum) * quantum


def stft_frames(n_samples: int, hop: int) -> int:
    """Frames of a centred STFT (torch and librosa, ``center=True``) of ``n_samples``."""
    return 1 + n_samples // hop


# ----- SGMSE+-family score models (SGMSE+, StoRM) ----------------------------------------
def padded_spectrograms(model: Any, items: Sequence[np.ndarray], norms: Sequence[float],
                        frames: int, device: str, reflection: bool = False) -> Any:
    """(B, 1, F, frames) transformed spectrograms of peak-normalised items, padded at the end
    (zeros, or by reflection), via the model's own ``_stft`` and ``_forward_transform``."""
    import torch

    specs = []
    for item, norm in zip(items, norms, strict=True):
        noisy = torch.from_numpy(item / norm).to(device).unsqueeze(0)
        spec = torch.unsqueeze(model._forward_transform(model._stft(noisy)), 0)
        pad = (0, frames - spec.shape[-1], 0, 0)
        padder = torch.nn.ReflectionPad2d(pad) if reflection else torch.nn.ZeroPad2d(pad)
        specs.append(padder(spec))
    return torch.cat(specs)


def spectrograms_to_audio(model: Any, samples: Any, items: Sequence[np.ndarray],
                          norms: Sequence[float]) -> list[np.ndarray]:
    """Each sampled spectrogram back to audio of its item's length, normalisation undone."""
    return [(model.to_audio(sample.squeeze(), item.size) * norm).float().cpu().numpy()
            for sample, item, norm in zip(samples, items, norms, strict=True)]


# ----- per-item diffusion noise -----------------------------------------------------------
def item_generators(seeds: Sequence[int], device: str) -> list[Any]:
    """One seeded ``torch.Generator`` per item, on ``device``."""
    import torch

    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def item_noise(generators: Sequence[Any], like: Any) -> Any:
    """Standard normal noise shaped like ``like`` whose row ``i`` comes from generator ``i``."""
    import torch

    if like.dim() == 0 or like.shape[0] != len(generators):
        raise RuntimeError(f"per-item noise for a tensor of shape {tuple(like.shape)} with "
                           f"{len(generators)} items")
    return torch.stack([torch.randn(tuple(like.shape[1:]), generator=g, dtype=like.dtype,
                                    device=like.device) for g in generators])


@contextlib.contextmanager
def per_item_noise(generators: Sequence[Any]) -> Iterator[None]:
    """Inside this block ``torch.randn_like(x)`` draws row ``i`` of ``x`` from generator ``i``.

    Upstream samplers draw their noise with ``torch.randn_like`` on the whole batch; routing
    each row to its own generator makes an item's noise independent of its batch-mates, and
    equal to what the same item gets alone. ``torch.randn`` is left alone.
    """
    import torch

    original = torch.randn_like

    def randn_like(x: Any, *args: Any, **kwargs: Any) -> Any:
        if args or any(v is not None for k, v in kwargs.items() if k != "memory_format"):
            return original(x, *args, **kwargs)
        return item_noise(generators, x)

    torch.randn_like = randn_like
    try:
        yield
    finally:
        torch.randn_like = original


class BatchedEnhancer(Enhancer):
    """An enhancer whose network takes several clips (or chunks of clips) per call.

    Subclasses include :data:`BATCH_PARAMS` and ``seed`` in ``default_params`` and implement
    :meth:`bucket_key` and :meth:`enhance_group`; :meth:`batch_limit` may lower ``max_batch``
    for samplers whose arithmetic couples the items of a batch.
    """

    def bucket_key(self, n_samples: int) -> int:
        """Padded size of an item of ``n_samples`` native-rate samples (items of equal key
        share a network batch)."""
        raise NotImplementedError

    @abc.abstractmethod
    def enhance_group(self, items: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]:
        """Enhance items of one bucket at ``native_sr``; item ``i`` draws its noise from
        ``seeds[i]``."""

    def batch_limit(self) -> int:
        return int(self.params["max_batch"])

    def enhance_batch(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        audios = [self.check_input(clip, index) for index, clip in enumerate(clips)]
        params = {**self.params, "max_batch": self.batch_limit()}
        enhanced = enhance_batched([self.to_native(a) for a in audios], params, self.native_sr,
                                   self.bucket_key, self.enhance_group, self.describe(self.name))
        return [self.from_native(out, audio.size, index)
                for index, (out, audio) in enumerate(zip(enhanced, audios, strict=True))]

    def enhance_native(self, audio: np.ndarray) -> np.ndarray:
        params = {**self.params, "max_batch": 1}
        return enhance_batched([audio], params, self.native_sr, self.bucket_key,
                               self.enhance_group, self.describe(self.name))[0]
