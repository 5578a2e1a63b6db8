"""Which files ``serec recommend`` processes, and the output name of each.

Inputs are audio files or folders (searched recursively for audio suffixes). A path given
explicitly is tried whatever its suffix, so a bad file is reported as a reject rather than
skipped. Outputs are named after the input's stem; stems shared by several inputs get a short
hash of the full path appended, so no output overwrites another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from serec.data.manifest import AUDIO_SUFFIXES, stable_id

REASON_NOT_FOUND = "not_found"
REASON_NO_AUDIO = "no_audio_files"
INPUT_STAGE = "input"


@dataclass
class InputFiles:
    """``files``: clip_id, path, name (output stem); ``rejects``: inputs that are unusable."""

    files: pd.DataFrame
    rejects: list[dict] = field(default_factory=list)


def _audio_in(folder: Path) -> list[Path]:
    return sorted(p.resolve() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def output_names(paths: Sequence[Path]) -> list[str]:
    """Stem per path; colliding stems (case-insensitive) become ``<stem>__<hash8>``."""
    counts = Counter(p.stem.lower() for p in paths)
    return [p.stem if counts[p.stem.lower()] == 1 else f"{p.stem}__{stable_id(str(p))[:8]}"
            for p in paths]


def collect_inputs(inputs: Sequence[str]) -> InputFiles:
    """Expand files and folders (in the given order, each file once)."""
    found: list[Path] = []
    rejects: list[dict] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            audio = _audio_in(path)
            if not audio:
                rejects.append(dict(path=str(path), stage=INPUT_STAGE, reason=REASON_NO_AUDIO,
                                    detail=f"no files ending in {', '.join(AUDIO_SUFFIXES)}"))
            found.extend(audio)
        elif path.is_file():
            found.append(path.resolve())
        else:
            rejects.append(dict(path=str(path), stage=INPUT_STAGE, reason=REASON_NOT_FOUND,
                                detail="no such file or folder"))
    paths = list(dict.fromkeys(found))
    files = pd.DataFrame({"clip_id": [stable_id(str(p), prefix="rec_") for p in paths],
                          "path": [str(p) for p in paths], "name": output_names(paths)})
    return InputFiles(files, rejects)
