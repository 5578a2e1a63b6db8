"""Router overhead against enhancer compute per clip (CPU), side by side.

Run from the repo root: ``PYTHONPATH=. python benchmarks/router_overhead.py``.

The router is what ``serec recommend`` runs per clip: CE/KL features, the AST spectrogram,
the gatekeeper of every fold and, for clips it does not keep, the expert of every fold. Without
``--run`` it is built in the shape of ``configs/local.yaml``'s training: ``--folds`` folds of
tiny-AST gatekeepers and hybrid (AST + CE/KL) experts, ``max_length`` 1024 frames, randomly
initialised (compute does not depend on the weights). With ``--run`` the run's trained folds
and threshold are used and a "routed mix" row adds what its decisions cost.

Every configured enhancer is built once (model load and warm-up are not counted) and timed on
every clip. Clips are corpus speech mixed with corpus noise at 5 dB (seeded noise without the
corpus). Work is interleaved batch by batch so that load from other processes hits every
method alike; torch, BLAS and OpenMP are limited to ``--threads`` threads.

Printed side by side per enhancer: its seconds per clip, the router's, their ratio (goal: at
most 5 %), and the compute saved against running every enhancer on every clip.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from serec.audio import TARGET_SR, read_audio
from serec.config import load_config
from serec.enhancers.registry import build_enhancer
from serec.evaluate.ensemble import EXPERT, GATEKEEPER
from serec.features.cekl import CEKL_COLUMNS
from serec.label.rule import ALL_FAILED
from serec.models.backbone import TINY, config_dict, extractor_params, load_backbone
from serec.models.card import ModelCard, save_model
from serec.models.heads import POOLING, ASTClassifier
from serec.recommend.router import Router, resolve_threshold
from serec.runs import RunDir

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
GOAL = 0.05
SNR_DB = 5.0
COMPONENTS = ("features_s", "spectrogram_s", "gatekeeper_s", "expert_s")


def corpus_mixtures(n: int, seconds: float, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` clips of ``seconds``: corpus speech + corpus noise at 5 dB SNR."""
    rng = np.random.default_rng(seed)
    length = int(seconds * TARGET_SR)
    speech_files = sorted((CORPUS / "speech").glob("*.wav"))
    noise_files = sorted((CORPUS / "noise").glob("*.wav"))
    if not speech_files or not noise_files:
        clips = [(0.1 * rng.standard_normal(length)).astype(np.float32) for _ in range(n)]
        return clips, "seeded noise (corpus not found)"
    clips = []
    for i in range(n):
        pieces, total, j = [], 0, i
        while total < length:
            pieces.append(read_audio(speech_files[j % len(speech_files)]))
            total += pieces[-1].size
            j += len(speech_files) // 7 + 1
        speech = np.concatenate(pieces)[:length]
        noise = np.resize(read_audio(noise_files[(3 * i) % len(noise_files)]), length)
        noise *= np.sqrt(np.mean(speech**2) / max(np.mean(noise**2), 1e-12)
                         / 10 ** (SNR_DB / 10))
        mix = speech + noise
        clips.append((0.9 * mix / max(np.abs(mix).max(), 1e-9)).astype(np.float32))
    return clips, f"corpus speech + noise at {SNR_DB:g} dB"


def untrained_run(root: Path, systems: list[str], folds: int, max_length: int) -> RunDir:
    """A run holding ``folds`` randomly initialised gatekeeper and hybrid expert checkpoints."""
    run = RunDir.of(root)
    majority, rest = systems[0], [*systems[1:], ALL_FAILED]
    for fold in range(folds):
        for stage, classes, features in ((GATEKEEPER, [majority, "other"], []),
                                         (EXPERT, rest, list(CEKL_COLUMNS))):
            torch.manual_seed(fold)
            backbone, extractor = load_backbone(TINY, max_length)
            model = ASTClassifier(backbone, len(classes), tabular_dim=len(features))
            card = ModelCard(stage=stage, classes=classes, fold=fold, features=features,
                             scaler_mean=[0.0] * len(features), scaler_scale=[1.0] * len(features),
                             positive_class=majority if stage == GATEKEEPER else None,
                             backbone=TINY, backbone_config=config_dict(backbone.config),
                             extractor=extractor_params(extractor), max_length=max_length,
                             pooling=POOLING, head_hidden=256, dropout=0.2)
            save_model(model, card, run.model_dir(stage, fold))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="default configs/local.yaml")
    parser.add_argument("--run", default=None, help="a run with trained gatekeeper + expert")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8, help="clips per router call")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    config = load_config(args.config)
    torch.set_num_threads(args.threads)
    clips, source = corpus_mixtures(args.clips, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            run = RunDir.of(args.run)
            threshold = resolve_threshold(run, config)[0]
        else:
            run = untrained_run(Path(tmp), config.candidates, args.folds, args.max_length)
            threshold = 0.5
        fallback = config.recommend.fallback
        # threshold 0 keeps every clip at the gatekeeper; above 1 sends every clip to the expert
        routers = {"gatekeeper only": Router.from_run(run, 0.0, fallback, args.seconds),
                   "gatekeeper + expert": Router.from_run(run, 1.01, fallback, args.seconds),
                   "as deployed": Router.from_run(run, threshold, fallback, args.seconds)}
        enhancers = {name: build_enhancer(name, entry) for name, entry in config.enhancers.items()}
        with threadpool_limits(limits=args.threads):
            results = measure(clips, routers, enhancers, args.batch)
    n_folds = len(routers["as deployed"].gatekeeper.members)
    print(f"router overhead, CPU: {len(clips)} clips of {args.seconds:g} s ({source}); "
          f"{os.cpu_count()} CPUs visible, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.2f}; router = {n_folds} folds x (gatekeeper, expert)"
          + (f" from {args.run}" if args.run else ", tiny AST, untrained") + "\n")
    report(results, trained=bool(args.run))


def measure(clips: list[np.ndarray], routers: dict[str, Router], enhancers: dict,
            batch: int) -> dict:
    """Seconds per clip of every router variant (with components) and every enhancer."""
    routed: dict[str, list] = {name: [] for name in routers}
    enhanced: dict[str, list[float]] = {name: [] for name in enhancers}
    for start in range(0, len(clips), batch):
        part = clips[start:start + batch]
        for name, router in routers.items():
            routed[name].append(router.route(part))
        for name, enhancer in enhancers.items():
            for clip in part:
                began = time.perf_counter()
                enhancer.enhance_batch([clip])
                enhanced[name].append(time.perf_counter() - began)
    return {"router": {k: pd.concat(v, ignore_index=True) for k, v in routed.items()},
            "enhancer": {k: np.asarray(v) for k, v in enhanced.items()}}


def report(results: dict, trained: bool) -> None:
    both = results["router"]["gatekeeper + expert"]
    keep = results["router"]["gatekeeper only"]
    print(f"{'router component':<28}{'s/clip':>9}")
    for label, value in (("CE/KL features", both["features_s"].mean()),
                         ("AST spectrogram", both["spectrogram_s"].mean()),
                         ("gatekeepers (all folds)", both["gatekeeper_s"].mean()),
                         ("experts (all folds)", both["expert_s"].mean()),
                         ("router, clip kept by gate", keep["router_s"].mean()),
                         ("router, clip sent to expert", both["router_s"].mean())):
        print(f"{label:<28}{value:>9.3f}")
    per_enhancer = {k: float(v.mean()) for k, v in results["enhancer"].items()}
    run_all = sum(per_enhancer.values())
    router_s = float(both["router_s"].mean())
    print(f"\n{'chosen enhancer':<18}{'enhancer s':>11}{'router s':>10}{'router/enh':>11}"
          f"{'<= 5%':>7}{'saved vs run-all':>18}")
    for name, seconds in per_enhancer.items():
        ratio = router_s / seconds
        saved = 1.0 - (router_s + seconds) / run_all
        print(f"{name:<18}{seconds:>11.3f}{router_s:>10.3f}{ratio:>11.1%}"
              f"{'yes' if ratio <= GOAL else 'no':>7}{saved:>18.1%}")
    deployed = results["router"]["as deployed"]
    chosen = np.array([per_enhancer.get(s, 0.0) for s in deployed["system"]])
    spent = deployed["router_s"].to_numpy() + chosen
    print(f"{'routed mix':<18}{chosen.mean():>11.3f}{deployed['router_s'].mean():>10.3f}"
          f"{deployed['router_s'].mean() / max(chosen.mean(), 1e-12):>11.1%}"
          f"{'yes' if deployed['router_s'].mean() <= GOAL * chosen.mean() else 'no':>7}"
          f"{1.0 - spent.mean() / run_all:>18.1%}")
    print(f"{'run all':<18}{run_all:>11.3f}")
    counts = deployed["system"].value_counts().to_dict()
    print(f"\nrouted mix = the deployed router's own choices {counts}"
          + ("" if trained else " (untrained: arbitrary)")
          + "; per-enhancer rows = the worst case, every clip sent to the expert.")


if __name__ == "__main__":
    main()
