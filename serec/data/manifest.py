"""The manifest: the one table every stage of a run starts from.

One row per clip. A clip is a whole file or, for long recordings, a window of it
(``offset_s`` + ``duration_s``). Ids are deterministic so that a rerun yields the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from serec.errors import UsageError
from serec.runs import MANIFEST, RunDir

MANIFEST_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("path", pa.string()),
    ("clean_path", pa.string()),
    ("offset_s", pa.float64()),
    ("duration_s", pa.float64()),
    ("speaker_id", pa.string()),
    ("source_id", pa.string()),
    ("noise_id", pa.string()),
    ("noise_type", pa.string()),
    ("snr_db", pa.float64()),
    ("corpus", pa.string()),
    # Acoustic condition of mixed clips (serec.data.mix); null for imported recordings.
    ("condition", pa.string()),
    ("rt60_s", pa.float64()),
    ("rir_id", pa.string()),
    ("interferer_speaker_id", pa.string()),
    ("n_noises", pa.int32()),
])
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)
METADATA_COLUMNS = ("speaker_id", "source_id", "noise_id", "noise_type", "snr_db", "corpus",
                    "condition", "rt60_s", "rir_id", "interferer_speaker_id", "n_noises")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64")

_CORPUS_TAG = re.compile(r"^[a-z0-9]+__")
_SPEAKER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("librispeech", re.compile(r"^(\d+)-\d+-\d+$")),
    ("vctk", re.compile(r"^(p\d{3}|s\d+)_\d{3}(?:_mic\d)?(?:_(?:noisy|clean))?$")),
    ("crema-d", re.compile(r"^(\d{4})_[A-Z]{3}_[A-Z]{3}_[A-Z]{2}$")),
    ("arctic", re.compile(r"^cmu_(?:arctic_)?us_([a-z]{3})_(?:arctic_)?[ab]\d{4}$")),
)
_ARCTIC_DIR = re.compile(r"^cmu_us_([a-z]{3})_arctic$")


def stable_id(*parts: Any, prefix: str = "") -> str:
    """A short deterministic id from the given parts (sha1 of their text)."""
    digest = hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]
    return f"{prefix}{digest}"


def strip_corpus_tag(stem: str) -> str:
    """``lsto__1688-142285-0000`` -> ``1688-142285-0000`` (tags as in the shared corpus)."""
    return _CORPUS_TAG.sub("", stem)


def utterance_key(path: str | Path) -> str:
    """Name of the utterance behind a file, for pairing noisy and clean files."""
    stem = strip_corpus_tag(Path(path).stem)
    return re.sub(r"_(noisy|clean)$", "", stem)


def parse_speaker(path: str | Path) -> tuple[str, str]:
    """``(speaker_id, corpus)`` from common corpus file names, else the parent folder.

    Knows LibriSpeech (``1688-142285-0000``), VCTK (``p287_001``), CREMA-D
    (``1001_DFA_ANG_XX``) and CMU ARCTIC (``cmu_us_aew_a0001`` or a ``cmu_us_bdl_arctic``
    folder). Speaker ids are prefixed with the corpus so that ids never collide across corpora.
    """
    path = Path(path)
    stem = strip_corpus_tag(path.stem)
    for corpus, pattern in _SPEAKER_PATTERNS:
        match = pattern.match(stem)
        if match:
            return f"{corpus}:{match.group(1)}", corpus
    for parent in path.parents:
        match = _ARCTIC_DIR.match(parent.name)
        if match:
            return f"arctic:{match.group(1)}", "arctic"
    return f"dir:{path.parent.name}", path.parent.name


def find_audio(dirs: Iterable[str | Path]) -> list[Path]:
    """All audio files under the given folders (or files), sorted for determinism."""
    found: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            found.append(d.resolve())
            continue
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is neither a file nor a folder")
        found.extend(p.resolve() for p in d.rglob("*")
                     if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return sorted(set(found))


def manifest_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly the manifest columns (missing ones null)."""
    df = pd.DataFrame(list(rows))
    for col in MANIFEST_COLUMNS:
        if col not in df:
            df[col] = None
    return df[list(MANIFEST_COLUMNS)]


def read_manifest(run: RunDir) -> pd.DataFrame:
    if not run.exists(MANIFEST):
        raise FileNotFoundError(
            f"{run.path(MANIFEST)} not found: create it with `serec data mix|import|demo`")
    return run.read_pandas(MANIFEST)


def write_manifest(run: RunDir, new_rows: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new_rows`` into the run's manifest (existing ids win) and write it atomically."""
    new_rows = manifest_frame(new_rows.to_dict("records"))
    if run.exists(MANIFEST):
        old = read_manifest(run)
        new_rows = new_rows[~new_rows["clip_id"].isin(old["clip_id"])]
        merged = pd.concat([old, new_rows], ignore_index=True) if len(new_rows) else old
    else:
        merged = new_rows
    if merged["clip_id"].duplicated().any():
        dupes = merged.loc[merged["clip_id"].duplicated(), "clip_id"].tolist()[:5]
        raise UsageError(f"duplicate clip ids in manifest: {dupes}; import each corpus once")
    table = pa.Table.from_pandas(manifest_frame(merged.to_dict("records")),
                                 schema=MANIFEST_SCHEMA, preserve_index=False)
    run.write_table(MANIFEST, table)
    return merged
