"""Corpora kept as toolkit manifests: lhotse (``RecordingSet``/``SupervisionSet``/``CutSet``)
and NeMo JSON lines, read into a run's manifest (``serec data import --manifest``).

Speaker ids (as the manifest spells them), offsets and durations come from the manifest; only
where it has no speaker is the file name parsed. Segments longer than the clip limit are cut
into windows like folder imports. Lhotse is an optional dependency
(``pip install 'serec[lhotse]'``); NeMo manifests are plain JSON lines and need no NeMo.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pandas as pd

from serec.audio import MAX_SEGMENT_SECONDS
from serec.data.importer import segment_windows
from serec.data.manifest import parse_speaker, stable_id, utterance_key, write_manifest
from serec.errors import UsageError
from serec.runs import RunDir

ManifestFormat = Literal["auto", "lhotse", "nemo"]
MANIFEST_FORMATS = ("auto", "lhotse", "nemo")
# keys NeMo's speech and audio-to-audio manifests use for the input and the clean reference
NEMO_AUDIO_KEYS = ("audio_filepath", "noisy_filepath", "input_filepath")
NEMO_CLEAN_KEYS = ("clean_filepath", "target_filepath")
NEMO_SPEAKER_KEYS = ("speaker", "speaker_id", "spk")


def open_text(path: str | Path):
    """A text reader for ``.jsonl``/``.json`` files and their ``.gz`` versions."""
    path = Path(path)
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _first_record(path: Path) -> dict[str, Any]:
    with open_text(path) as f:
        for line in f:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}: not a JSON-lines manifest ({exc.msg} on its "
                                     f"first line)") from None
                if not isinstance(record, dict):
                    raise UsageError(f"{path}: lines must be JSON objects")
                return record
    raise UsageError(f"{path}: the manifest is empty")


def detect_format(path: str | Path) -> Literal["lhotse", "nemo"]:
    """``lhotse`` or ``nemo`` from the first record's keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    record = _first_record(path)
    if any(k in record for k in NEMO_AUDIO_KEYS):
        return "nemo"
    if "sources" in record or "recording_id" in record or record.get("type") in (
            "MonoCut", "MultiCut", "MixedCut", "PaddingCut"):
        return "lhotse"
    raise UsageError(f"{path}: neither a lhotse manifest (recordings, supervisions or cuts) nor "
                     f"a NeMo manifest (one of {', '.join(NEMO_AUDIO_KEYS)} per line); pass "
                     f"--format to say which")


def _nemo_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            yield number, record


def _resolve(audio: str, base: Path) -> str:
    """NeMo resolves relative audio paths against the manifest's folder."""
    candidate = Path(audio).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _first_key(record: dict[str, Any], keys: Sequence[str]) -> Any:
    return next((record[k] for k in keys if record.get(k) is not None), None)


def _clip_rows(prefix: str, key: str, path: str, clean: str | None, offset: float,
               duration: float | None, speaker: str | None, source: str, corpus: str,
               max_seconds: float, clip_id: str | None = None) -> list[dict[str, Any]]:
    """Manifest rows of one segment, cut into windows of at most ``max_seconds``."""
    if speaker is None:
        speaker = parse_speaker(path)[0]
    windows = segment_windows(duration, max_seconds) if duration else [(0.0, duration)]
    rows = []
    for index, (start, length) in enumerate(windows):
        if clip_id is not None:
            row_id = clip_id if len(windows) == 1 else f"{clip_id}-w{index}"
        else:
            row_id = stable_id(prefix, key, index, prefix=f"{prefix[:3]}-")
        rows.append(dict(clip_id=row_id, path=path, clean_path=clean,
                         offset_s=offset + start, duration_s=length, speaker_id=str(speaker),
                         source_id=source, noise_id=None, noise_type=None, snr_db=None,
                         corpus=corpus))
    return rows


def read_nemo(path: str | Path, corpus: str | None = None,
              max_seconds: float = MAX_SEGMENT_SECONDS) -> pd.DataFrame:
    """Manifest rows of a NeMo JSON-lines manifest (``audio_filepath``, ``offset``,
    ``duration``, ``speaker``; ``noisy_filepath``/``clean_filepath`` pairs too)."""
    path = Path(path)
    corpus = corpus or path.name.split(".")[0]
    rows: list[dict[str, Any]] = []
    for number, record in _nemo_records(path):
        audio = _first_key(record, NEMO_AUDIO_KEYS)
        if not isinstance(audio, str):
            raise UsageError(f"{path}:{number}: no audio path (one of "
                             f"{', '.join(NEMO_AUDIO_KEYS)})")
        audio = _resolve(audio, path.parent)
        clean = _first_key(record, NEMO_CLEAN_KEYS)
        try:
            offset = float(record.get("offset") or 0.0)
            duration = None if record.get("duration") is None else float(record["duration"])
        except (TypeError, ValueError):
            raise UsageError(f"{path}:{number}: offset and duration must be numbers") from None
        speaker = _first_key(record, NEMO_SPEAKER_KEYS)
        rows += _clip_rows("nemo", f"{audio}\x1f{offset}\x1f{duration}", audio,
                           _resolve(clean, path.parent) if isinstance(clean, str) else None,
                           offset, duration, speaker,
                           f"{corpus}:{utterance_key(audio)}", corpus, max_seconds)
    if not rows:
        raise UsageError(f"{path}: the manifest has no entries")
    return pd.DataFrame(rows)


def require_lhotse() -> ModuleType:
    """The lhotse package, or a usage error saying how to install it."""
    try:
        import lhotse
    except ImportError:
        raise UsageError("reading or writing lhotse manifests needs the lhotse package: "
                         "pip install 'serec[lhotse]'") from None
    return lhotse


def _recording_path(recording: Any) -> str:
    source = recording.sources[0]
    if source.type != "file":
        raise UsageError(f"recording {recording.id!r} has a {source.type!r} audio source; "
                         f"serec reads audio files only")
    return str(Path(source.source).expanduser().resolve())


def load_lhotse_cuts(paths: Sequence[str | Path]) -> Any:
    """One lhotse ``CutSet`` from a cuts manifest, or recordings (+ supervisions) manifests
    (one cut per supervision segment, or per recording where there are none)."""
    lhotse = require_lhotse()
    cuts, recordings, supervisions = [], None, None
    for path in paths:
        try:
            manifest = lhotse.load_manifest(path)
        except Exception as exc:  # lhotse raises plain ValueError/KeyError on bad input
            raise UsageError(f"{path}: not a readable lhotse manifest ({exc})") from None
        if isinstance(manifest, lhotse.CutSet):
            cuts.append(manifest)
        elif isinstance(manifest, lhotse.RecordingSet):
            recordings = manifest
        elif isinstance(manifest, lhotse.SupervisionSet):
            supervisions = manifest
        else:
            raise UsageError(f"{path}: a lhotse {type(manifest).__name__}; serec reads "
                             f"cuts, recordings and supervisions")
    if recordings is None and supervisions is not None:
        raise UsageError("a lhotse SupervisionSet needs its RecordingSet: pass both files")
    if recordings is not None:
        built = lhotse.CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
        cuts.append(built.trim_to_supervisions(keep_overlapping=False)
                    if supervisions is not None else built)
    return lhotse.CutSet.from_cuts(c for cut_set in cuts for c in cut_set)


def read_lhotse(paths: Sequence[str | Path], corpus: str | None = None,
                max_seconds: float = MAX_SEGMENT_SECONDS) -> pd.DataFrame:
    """Manifest rows of lhotse manifests; clip ids are the cut ids (``-wK`` per window)."""
    corpus = corpus or Path(paths[0]).name.split(".")[0]
    rows: list[dict[str, Any]] = []
    for cut in load_lhotse_cuts(paths):
        if not getattr(cut, "has_recording", False):
            raise UsageError(f"cut {cut.id!r} has no single recording (mixed or padding "
                             f"cuts are not supported)")
        audio = _recording_path(cut.recording)
        speakers = {s.speaker for s in cut.supervisions if s.speaker}
        speaker = sorted(speakers)[0] if speakers else None
        custom = cut.custom or {}
        clean = custom.get("clean_path")
        rows += _clip_rows("lhotse", cut.id, audio, clean, float(cut.start), float(cut.duration),
                           speaker, f"{corpus}:{cut.recording_id}", corpus, max_seconds,
                           clip_id=cut.id)
    if not rows:
        raise UsageError(f"{list(map(str, paths))}: the lhotse manifests hold no cuts")
    return pd.DataFrame(rows)


def import_manifests(run: RunDir, paths: Sequence[str | Path], fmt: ManifestFormat = "auto",
                     corpus: str | None = None,
                     max_seconds: float = MAX_SEGMENT_SECONDS) -> pd.DataFrame:
    """Add the clips of lhotse or NeMo manifests to the run's manifest; returns the new rows."""
    formats = {str(p): (detect_format(p) if fmt == "auto" else fmt) for p in paths}
    lhotse_paths = [p for p, f in formats.items() if f == "lhotse"]
    frames = [read_nemo(p, corpus, max_seconds) for p, f in formats.items() if f == "nemo"]
    if lhotse_paths:
        frames.append(read_lhotse(lhotse_paths, corpus, max_seconds))
    frame = pd.concat(frames, ignore_index=True)
    if frame["clip_id"].duplicated().any():
        dupes = frame.loc[frame["clip_id"].duplicated(), "clip_id"].tolist()[:3]
        raise UsageError(f"the manifests repeat clip ids {dupes}; import each corpus once")
    write_manifest(run, frame)
    return frame
