"""``report/report.md`` and the plain-text headline printed by ``serec evaluate``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from serec.evaluate.ensemble import BEST_SINGLE, BOOSTED
from serec.evaluate.targets import format_targets

HEADLINE_COLUMNS = (("system", "system"), ("mean_ovr", "mean OVR"), ("gap_closed", "gap closed"),
                    ("mean_regret", "mean regret"), ("compute_s", "compute s/clip"),
                    ("macro_f1", "macro F1"), ("gap_to_hull", "vs best mixture"))
MAX_LOW_CONFIDENCE_ROWS = 20
MAX_CURVE_ROWS = 12  # operating points listed per router (all are in metrics.json)
SMALL_GAP = 0.05  # OVR; below it, gap-closed shares swing wildly


def gap_note(routing: dict[str, Any]) -> str | None:
    """A warning when the oracle barely beats the best single enhancer."""
    gap = routing.get("oracle_minus_best_single")
    if gap is None or gap >= SMALL_GAP:
        return None
    return (f"note: the oracle beats the best single enhancer by only {gap:.3f} OVR on these "
            "clips, so gap-closed shares are unstable; compare mean OVR and regret instead")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _numbers(value: Any) -> Any:
    """Metrics read back from JSON hold None where a number was NaN; make them NaN again so
    that the number formats below apply."""
    if isinstance(value, dict):
        return {k: math.nan if v is None else _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [math.nan if v is None else _numbers(v) for v in value]
    return value


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                   percent: Sequence[str] = ()) -> str:
    """A GitHub markdown table of ``rows``; ``columns`` are ``(key, header)`` pairs."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [_pct(row.get(k)) if k in percent else _fmt(row.get(k)) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
               percent: Sequence[str] = ()) -> str:
    """A fixed-width plain-text table (first column left-aligned, the rest right-aligned)."""
    cells = [[h for _, h in columns]]
    for row in rows:
        cells.append([_pct(row.get(k)) if k in percent else _fmt(row.get(k))
                      for k, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for r in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def format_headline(metrics: dict[str, Any]) -> str:
    """The headline table as plain text, with the threshold and the router's compute."""
    metrics = _numbers(metrics)
    routing = metrics["routing"]
    compute = routing["compute"]
    ensemble = metrics["test"]["ensemble"]
    low, high = ensemble.get("macro_f1_ci95", [math.nan, math.nan])
    lines = [text_table(metrics["headline"], HEADLINE_COLUMNS, percent=("gap_closed",)), "",
             f"test clips {metrics['n_test']} (scored {routing['n_scored']}), folds "
             f"{metrics['folds']}, gatekeeper threshold {metrics['threshold']['threshold']:.2f} "
             f"(chosen on validation; macro F1 {metrics['threshold']['default_macro_f1']:.3f} at "
             f"0.5 -> {metrics['threshold']['macro_f1']:.3f})",
             f"router macro F1 on test {ensemble['macro_f1']:.3f} (95% CI {low:.3f}-{high:.3f}); "
             f"router {compute['router_s']:.3f} s/clip = "
             f"{compute['router_overhead_vs_chosen']:.1%} of the chosen enhancer; "
             f"{compute['saved_vs_run_all']:.1%} of run-all compute saved"]
    ties = metrics.get("tie_aware") or {}
    if ties.get("rows"):
        row = ties["rows"][0]
        lines.append(f"tie-aware (a pick within the noise floor of the best counts): accuracy "
                     f"{_na(row['accuracy'])} -> {_na(row['tie_aware_accuracy'])}, macro F1 "
                     f"{_na(row['macro_f1'])} -> {_na(row['tie_aware_macro_f1'])} "
                     f"({ties['n_tied']} of {ties['n_test']} test clips tied)")
    lines.append(f"oracle - best single {_na(routing['oracle_minus_best_single'])} OVR; "
                 f"{_shift_null(routing)}")
    if gap_note(routing):
        lines.append(gap_note(routing))
    if metrics.get("targets"):
        lines += ["", "routing targets:", *(f"  {t}" for t in format_targets(metrics["targets"]))]
    choice = metrics.get("router_choice") or {}
    if choice.get("validation_mean_ovr"):
        means = ", ".join(f"{k} {_na(v)}" for k, v in choice["validation_mean_ovr"].items())
        single = _na(choice.get("best_single_validation_mean_ovr"))
        lines.append(f"recommend deploys: {deployment_phrase(choice)}; validation mean OVR "
                     f"{means}, best single {choice.get('best_single')} {single}")
    if metrics.get("report_path"):
        lines.append(f"report: {metrics['report_path']}")
    return "\n".join(lines)


def deployment_phrase(choice: dict[str, Any], emphasis: str = "") -> str:
    """What ``recommend`` deploys after ``choice`` (``router_choice.json``), names wrapped in
    ``emphasis`` (``**`` in Markdown)."""
    if choice["router"] == BEST_SINGLE:
        return (f"the best single system {emphasis}{choice['system']}{emphasis} on every clip "
                f"(no router beat it on validation)")
    if choice.get("margin"):
        return (f"{emphasis}{choice['router']}{emphasis}, deferring to "
                f"{emphasis}{choice['defer_to']}{emphasis} unless another label leads it by "
                f"more than {choice['margin']:.2f} in probability (margin chosen on validation)")
    return f"{emphasis}{choice['router']}{emphasis}"


def _class_table(report: dict[str, Any]) -> str:
    if not report.get("n"):
        return "No clips in this group."
    return markdown_table(report["per_class"], (("class", "class"), ("precision", "precision"),
                                                ("recall", "recall"), ("f1", "F1"),
                                                ("support", "support")))


def _confusion_table(report: dict[str, Any]) -> str:
    classes = report["classes"]
    rows = [{"true": c, **{p: n for p, n in zip(classes, counts, strict=True)}}
            for c, counts in zip(classes, report["confusion"], strict=True)]
    return markdown_table(rows, [("true", "true \\ predicted"), *[(c, c) for c in classes]])


def _mean_std(stats: dict[str, Any]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def render_report(metrics: dict[str, Any]) -> str:
    """The whole evaluation as markdown (tables plus the figures next to it)."""
    metrics = _numbers(metrics)
    test, val, routing = metrics["test"], metrics["validation"], metrics["routing"]
    ens = test["ensemble"]
    thr = metrics["threshold"]
    low, high = ens["macro_f1_ci95"]
    note = gap_note(routing)
    out = [
        "# serec evaluation", "",
        f"Run `{metrics['run']}`; folds {metrics['folds']}; majority system "
        f"`{metrics['majority']}`; classes {', '.join(metrics['classes'])}; "
        f"{metrics['n_validation']} validation clips, {metrics['n_test']} test clips; "
        f"`all_failed` falls back to `{metrics['fallback']}`. Per-clip probabilities and "
        "decisions: `predictions.parquet`; every number: `metrics.json`."
        + (f" **Cross-corpus:** the test clips are every labeled clip of `{metrics['test_run']}`"
           "; threshold and best single come from this run's own pool."
           if metrics.get("test_run") else ""), "",
        "## Headline (held-out test set)", "",
        markdown_table(metrics["headline"], (*HEADLINE_COLUMNS, ("p90_regret", "p90 regret"),
                                             ("share_regret_gt_0_2", "regret > 0.2")),
                       percent=("gap_closed", "share_regret_gt_0_2")), "",
        "Gap closed: share of the oracle-minus-best-single OVR gap a system closes. Compute: "
        "router features + models + the chosen enhancer; the oracle runs every candidate and "
        "scores every output with DNSMOS." + (f" **{note}.**" if note else ""), "",
        "![quality versus compute](quality_vs_compute.png)", "",
        "## Gatekeeper threshold", "",
        f"Chosen on {thr['n']} out-of-fold validation predictions to maximise pipeline macro "
        f"F1: **{thr['threshold']:.2f}** (macro F1 {thr['default_macro_f1']:.3f} at 0.5, "
        f"{thr['macro_f1']:.3f} calibrated). The test set played no part in the choice.", "",
        "## Macro F1 (all classes)", "",
        markdown_table([
            {"what": "validation, per fold", "default": _mean_std(val["macro_f1_default"]),
             "calibrated": _mean_std(val["macro_f1_calibrated"])},
            {"what": "test, each fold's pipeline",
             "default": _mean_std(test["fold_macro_f1_default"]),
             "calibrated": _mean_std(test["fold_macro_f1_calibrated"])},
            {"what": "test, fold ensemble",
             "default": f"{test['ensemble_default_threshold']['macro_f1']:.3f}",
             "calibrated": f"{ens['macro_f1']:.3f} (95% CI {low:.3f}-{high:.3f})"},
        ], (("what", ""), ("default", "threshold 0.5"), ("calibrated", "calibrated"))), "",
        "Per fold (validation):", "",
        markdown_table(val["per_fold"], (("fold", "fold"), ("n", "clips"),
                                         ("macro_f1_default", "macro F1 @0.5"),
                                         ("macro_f1_calibrated", "macro F1 calibrated"))), "",
        "## Test set, fold ensemble", "",
        _class_table(ens), "", _confusion_table(ens), "",
        "![confusion matrix](confusion_test.png)", "",
        "### Gatekeeper (majority vs rest)", "",
        _class_table(ens["gatekeeper"]), "", _confusion_table(ens["gatekeeper"]), "",
        "### Expert (clips routed to it whose label is not the majority)", "",
        _class_table(ens["expert"]), "",
        "### Where the errors come from", "",
        markdown_table(ens["bottleneck"]["kinds"], (("kind", "error kind"), ("count", "clips"),
                                                     ("share_of_errors", "of errors"),
                                                     ("share_of_clips", "of clips")),
                       percent=("share_of_errors", "share_of_clips")), "",
        f"Total errors: {ens['bottleneck']['errors']} of {ens['bottleneck']['n']} clips "
        f"(validation, out of fold: {val['out_of_fold']['bottleneck']['errors']} of "
        f"{val['out_of_fold']['bottleneck']['n']}).", "",
        f"### Low-confidence gatekeeper decisions (|p - {thr['threshold']:.2f}| < 0.1)", "",
    ]
    lowconf = ens["low_confidence"]
    if lowconf:
        out += [markdown_table(lowconf[:MAX_LOW_CONFIDENCE_ROWS],
                               (("clip_id", "clip"), ("p_majority", "P(majority)"),
                                ("truth", "truth"), ("predicted", "predicted"),
                                ("correct", "correct"))),
                "" if len(lowconf) <= MAX_LOW_CONFIDENCE_ROWS else
                f"\n({len(lowconf)} in all; every row is in metrics.json)", ""]
    else:
        out += ["None.", ""]
    for stage, comparison in metrics["comparisons"].items():
        report = comparison["test"]
        out += [f"## Comparison: `{stage}` model", "",
                f"Validation macro F1 per fold {_mean_std(comparison['validation_macro_f1'])}; "
                f"test (fold ensemble) {report['macro_f1']:.3f} (95% CI "
                f"{report['macro_f1_ci95'][0]:.3f}-{report['macro_f1_ci95'][1]:.3f}).", "",
                _class_table(report), ""]
    out += _tie_section(metrics.get("tie_aware"))
    out += _cost_quality_section(metrics)
    if metrics.get("targets"):
        out += ["## Routing targets", "", "Does routing pay on this run (see "
                "`serec/evaluate/targets.py`)?", "",
                *(f"- {line}" for line in format_targets(metrics["targets"])), ""]
    compute = routing["compute"]
    out += [
        "## What routing is worth", "",
        f"Oracle minus best single (`{routing['best_single']}`): "
        f"{routing['oracle_minus_best_single']:.3f} OVR over {routing['n_scored']} scored test "
        f"clips; {_shift_null(routing)} Router regret: see the headline; histogram below.", "",
        "![regret histogram](regret_hist.png)", "",
        markdown_table([{"what": k.replace("_", " "), "value": v} for k, v in compute.items()],
                       (("what", "compute per clip"), ("value", "value"))), "",
        "### By SNR band", "", _group_table(routing["by_snr_band"]), "",
        "### By noise type", "", _group_table(routing["by_noise_type"]), "",
        "### By acoustic condition", "", _group_table(routing.get("by_condition", [])), "",
        "### High-margin clips", "",
        f"Accuracy on clips whose best candidate beats the second by more than "
        f"{routing['high_margin']['min_margin']} OVR: "
        f"{_fmt(routing['high_margin']['accuracy_high_margin'])} "
        f"({routing['high_margin']['n_high_margin']} clips), against "
        f"{_fmt(routing['high_margin']['accuracy_all'])} on all "
        f"{routing['high_margin']['n_all']}.", "",
    ]
    return "\n".join(out)


def _na(value: Any, digits: int = 3) -> str:
    """A number, or ``n/a`` where there is none (no clips, no framings)."""
    text = _fmt(value, digits)
    return "n/a" if text == "-" else text


def _shift_null(routing: dict[str, Any]) -> str:
    """The shift-null gain of the best single, beside the oracle gap it is part of."""
    gain = routing.get("shift_null_gain_best_single")
    if gain is None or (isinstance(gain, float) and math.isnan(gain)):
        return ("shift-null gain of the best single n/a (one DNSMOS framing scored; set "
                "label.framings.shifts_ms to measure it).")
    return (f"of that, the best single's own shift-null gain (max over its shifted framings "
            f"minus its scored OVR, pure metric noise) is {gain:.3f} OVR.")


def _tie_section(ties: dict[str, Any] | None) -> list[str]:
    """Strict against tie-aware accuracy and macro F1 (a pick inside the clip's tied set is
    right), with regret."""
    if not ties:
        return []
    columns = (("router", "router"), ("accuracy", "accuracy"), ("macro_f1", "macro F1"),
               ("tie_aware_accuracy", "tie-aware accuracy"),
               ("tie_aware_macro_f1", "tie-aware macro F1"), ("mean_regret", "mean regret"))
    rows = [{k: (_na(r.get(k)) if k != "router" else r[k]) for k, _ in columns}
            for r in ties["rows"]]
    return ["## Ties within the metric's noise", "",
            f"{ties['n_tied']} of {ties['n_test']} test clips ({_pct(ties['share_tied'])}) have "
            f"more than one system within the noise floor of the best (median floor "
            f"{_na(ties['median_noise_floor'])} OVR). Tie-aware scores count a pick inside "
            "the clip's tied set as right (for macro F1 the label becomes the pick there); the "
            "strict figures are the thesis's argmax ones.", "",
            markdown_table(rows, columns) if rows else "n/a", ""]


def _group_table(rows: Sequence[dict[str, Any]]) -> str:
    return markdown_table(rows, (("group", "group"), ("n", "clips"), ("oracle", "oracle"),
                                 ("router", "router"), ("best_single", "best single"),
                                 ("passthrough", "passthrough"), ("random", "random"),
                                 ("gap_closed", "gap closed"), ("mean_regret", "mean regret"),
                                 ("accuracy", "accuracy")),
                          percent=("gap_closed",))


def _curve_rows(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most :data:`MAX_CURVE_ROWS` operating points, evenly spread over the sweep."""
    if len(points) <= MAX_CURVE_ROWS:
        return list(points)
    keep = sorted({round(i * (len(points) - 1) / (MAX_CURVE_ROWS - 1))
                   for i in range(MAX_CURVE_ROWS)})
    return [points[i] for i in keep]


def _cost_quality_section(metrics: dict[str, Any]) -> list[str]:
    """Single systems with per-device compute, the best fixed mixture and router sweeps."""
    cost = metrics.get("cost_quality")
    if not cost:
        return []
    device_columns = (("compute_s", "compute s/clip"), ("cpu_s", "CPU-s"), ("gpu_s", "GPU-s"),
                      ("network_passes", "network passes"))
    choice = metrics.get("router_choice") or {}
    out = ["## Cost and quality", "",
           "Best fixed mixture: the upper envelope of the single systems on the cost-quality "
           "plane (send each clip to one of two systems at a fixed rate; RouterBench's zero "
           "router). *vs best mixture* is a system's mean OVR minus that envelope at the same "
           "compute. AIQ: mean OVR under a curve over the shared compute range. Router seconds "
           f"run on the {cost['router_device'].upper()}.", "",
           markdown_table(cost["singles"], (("system", "system"), ("mean_ovr", "mean OVR"),
                                            *device_columns)), "",
           "![cost-quality plane](cost_quality.png)", ""]
    if choice:
        f1 = choice["validation_macro_f1"]
        scores = ", ".join(f"{k} {_fmt(v)} (macro F1 {_fmt(f1.get(k))})"
                           for k, v in choice.get("validation_mean_ovr", {}).items())
        out += [f"Router chosen on the mean OVR of its out-of-fold validation picks on the "
                f"training pool: **{choice.get('best_router', choice['router'])}** ({scores}; "
                f"best single {choice.get('best_single')} "
                f"{_fmt(choice.get('best_single_validation_mean_ovr'))}). `recommend` "
                f"deploys {deployment_phrase(choice, '**')}.", ""]
    deferral = (metrics.get("comparisons") or {}).get(BOOSTED, {}).get("deferral")
    if deferral:
        out += [f"Boosted router's deferral margin, chosen on the same picks: "
                f"{deferral['margin']:.2f} (it leaves {deferral['default']} on "
                f"{deferral['validation_share_left_default']:.0%} of validation clips; mean OVR "
                f"{_fmt(deferral['validation_oof_mean_ovr'])}, against "
                f"{_fmt(deferral['validation_mean_ovr_by_margin'].get('0.00'))} at margin 0).",
                ""]
    for curve in cost["routers"]:
        low, high = curve["aiq_range_s"]
        out += [f"### {curve['router']}: {curve['parameter'].replace('_', ' ')} sweep", "",
                f"AIQ {_fmt(curve['aiq'])} against {_fmt(curve['hull_aiq'])} for the best "
                f"fixed mixture over {_fmt(low)}-{_fmt(high)} s/clip.", "",
                markdown_table(_curve_rows(curve["points"]),
                               ((curve["parameter"], curve["parameter"].replace("_", " ")),
                                ("mean_ovr", "mean OVR"), *device_columns,
                                ("hull_ovr", "best mixture OVR"),
                                ("gap_to_hull", "vs best mixture"))), ""]
    return out
