"""Speech quality: non-intrusive DNSMOS (batched ONNX) and intrusive PESQ / ESTOI / SI-SDR."""

from serec.quality.dnsmos import SCORE_COLUMNS, Dnsmos, DnsmosScores
from serec.quality.intrusive import (
    INTRUSIVE_COLUMNS,
    estoi,
    intrusive_scores,
    pesq_wb,
    si_sdr,
)

__all__ = [
    "INTRUSIVE_COLUMNS",
    "SCORE_COLUMNS",
    "Dnsmos",
    "DnsmosScores",
    "estoi",
    "intrusive_scores",
    "pesq_wb",
    "si_sdr",
]
