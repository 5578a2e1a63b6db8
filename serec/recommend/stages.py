"""Ray Data stages of ``serec recommend``: route, keep one system's clips, name the output,
write it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serec.audio import TARGET_SR, wav_bytes
from serec.label.stages import from_bytes, output_column
from serec.recommend.router import load_router, probability_column
from serec.runs import RunDir

OUTPUT = "output"  # system name of the routed output column (``out__output``) after a branch
ROUTE_COLUMNS = ("label", "system", "confidence", "routed_to_expert", "router_s")


class Route:
    """Actor: the router (every fold of its stages, loaded once) adds its decision per clip."""

    def __init__(self, run_root: str, threshold: float, fallback: str, max_seconds: float,
                 threads: int = 1, device: str = "cpu") -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.router = load_router(RunDir.of(run_root), threshold, fallback, max_seconds,
                                  device)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        ok = batch["reject_reason"].isna().to_numpy()
        out = batch.copy()
        columns = [*ROUTE_COLUMNS, *(probability_column(c) for c in self.router.classes)]
        decisions = self.router.route([from_bytes(a) for a in batch.loc[ok, "audio"]])
        for column in columns:
            values = np.full(len(batch), None, dtype=object)
            values[ok] = decisions[column].to_numpy(dtype=object)
            out[column] = values
        for column in columns:
            # explicit dtypes: a batch of only rejected clips must keep the same schema
            out[column] = (out[column].astype("string") if column in ("label", "system")
                           else pd.to_numeric(out[column], errors="coerce").astype(np.float64))
        return out


def keep_system(batch: pd.DataFrame, system: str) -> pd.DataFrame:
    """The rows routed to ``system`` (rejected rows have no system)."""
    chosen = batch["system"].eq(system).fillna(False).astype(bool).to_numpy()
    return batch[chosen].reset_index(drop=True)


def name_output(batch: pd.DataFrame, system: str) -> pd.DataFrame:
    """Rename one enhancer's ``out__/sec__/err__/node__<system>`` columns to system-neutral
    names, so that the branches of all systems share one schema."""
    return batch.rename(columns={output_column(system): output_column(OUTPUT),
                                 f"sec__{system}": "enhancer_s",
                                 f"err__{system}": "enhancer_error",
                                 f"node__{system}": "enhancer_node"})


def write_outputs(batch: pd.DataFrame, out_root: str) -> pd.DataFrame:
    """Write each enhanced clip to ``OUT/rec_<system>/<name>.wav`` through the output folder's
    filesystem (local, NFS or object store) and drop the audio; ``output`` says where it went
    (None where the enhancer failed)."""
    out = RunDir.of(out_root)
    audio_column = output_column(OUTPUT)
    written: list[str | None] = []
    for system, name, data, error in zip(batch["system"], batch["name"], batch[audio_column],
                                         batch["enhancer_error"], strict=True):
        if (isinstance(error, str) and error) or not data:
            written.append(None)
            continue
        rel = f"rec_{system}/{name}.wav"
        out.write_bytes(rel, wav_bytes(from_bytes(data), TARGET_SR))
        written.append(out.path(rel))
    return batch.drop(columns=[audio_column]).assign(output=written)
