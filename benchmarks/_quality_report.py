"""bench_quality's figures: each table's means over its seeds and gaps, the markdown table, the summary lines.

Gap: classification, accuracy points questlearn - peer; regression, RMSE %
questlearn / peer - 1 (below 0: questlearn is better). Peers: ``gbdt``
(scikit-learn's HistGradientBoosting), ``lightgbm``, ``catboost``, and
``best``, the best of the three on each table (highest accuracy, lowest RMSE).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

ROOT = Path(__file__).parent.parent
LIBRARIES = ("lightgbm", "catboost")  # beside HistGradientBoosting (the "boosting" entry, peer "gbdt")
PEERS = ("gbdt", *LIBRARIES, "best")
SMALL_TABLE_ROWS = 50_000  # the "time to a model" summary: tables under this many rows
UNITS = {"classification": "accuracy points, questlearn - peer", "regression": "RMSE %, questlearn / peer - 1"}


def mean_of(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def gap_to(task: str, ours: dict, theirs: dict) -> float:
    """Accuracy points questlearn - peer (classification), or RMSE % questlearn / peer - 1 (regression)."""
    if task == "classification":
        return 100 * (ours["accuracy"] - theirs["accuracy"])
    return 100 * (ours["rmse"] / theirs["rmse"] - 1)


def fit_seconds(run: dict):
    """A library's fit time (runs from before fit and predict were timed apart: both)."""
    return run.get("fit_seconds", run.get("seconds"))


# --------------------------------------------------------------------------- one table

def summarise(task: str, runs: list) -> dict:
    """Means over the seeds of each figure, and the gaps; a failed side's last error line instead of its figures."""
    ours = [r["questlearn"] for r in runs if "evaluate" in r.get("questlearn", {})]
    boosted = [r["boosting"] for r in runs if "scores" in r.get("boosting", {})]
    summary = {"seeds": len(runs)}
    for side, done, key in (("questlearn", ours, "questlearn"), ("boosting", boosted, "boosting")):
        if not done:
            errors = [r.get(key, {}).get("error") for r in runs if r.get(key, {}).get("error")]
            summary[f"{side}_error"] = (errors[0].strip().splitlines()[-1].replace(f"{ROOT}{os.sep}", "")
                                        if errors else "not run")
    if ours:
        q = {k: mean_of(r["evaluate"].get(k) for r in ours) for k in
             (("accuracy", "auc") if task == "classification" else ("rmse", "mae"))}
        exact = [r["predict_exact"] for r in ours if "predict_exact" in r]
        if exact:
            q.update({f"{k}_exact": mean_of(e.get(k) for e in exact) for k in exact[0]})
        for k in [k for k, v in q.items() if v is None]:  # a figure evaluate no longer prints: predict's exact one
            q[k] = q.get(f"{k}_exact")
        summary.update(questlearn=q, questlearn_train_seconds=mean_of(r["train_seconds"] for r in ours),
                       questlearn_epochs=mean_of(r.get("epochs") for r in ours))
    if boosted:
        summary["boosting"] = {k: mean_of(r["scores"][k] for r in boosted) for k in boosted[0]["scores"]}
        summary["baseline"] = {k: mean_of(r["baseline"][k] for r in boosted) for k in boosted[0]["baseline"]
                               if k != "predicts"}
        summary["boosting_seconds"] = mean_of(fit_seconds(r) for r in boosted)
        summary["boosting_rows_from"] = boosted[0].get("rows_from", "the split's rows.npy")
    bayes = [r["bayes"] for r in boosted if "bayes" in r]
    if bayes:
        summary["bayes"] = {k: mean_of(x[k] for x in bayes) for k in bayes[0]}
    summarise_libraries(boosted, summary)
    metric = "accuracy" if task == "classification" else "rmse"
    if not (ours and boosted) or summary["questlearn"].get(metric) is None:
        return summary
    summary["gap"] = gap_to(task, summary["questlearn"], summary["boosting"])
    summary["gap_unit"] = UNITS[task]
    peers = {"gbdt": summary["boosting"], **{name: summary[name] for name in LIBRARIES if name in summary}}
    for library in LIBRARIES:
        if library in summary:
            summary[f"{library}_gap"] = gap_to(task, summary["questlearn"], summary[library])
    if len(peers) > 1:
        best = (max if task == "classification" else min)(peers, key=lambda name: peers[name][metric])
        summary["best_boosting"] = best
        summary["best_gap"] = gap_to(task, summary["questlearn"], peers[best])
    return summary


def summarise_libraries(boosted: list, summary: dict) -> None:
    """LightGBM's and CatBoost's means and fit seconds (runs that have them), or their last error line."""
    for library in LIBRARIES:
        done = [r[library] for r in boosted if "scores" in r.get(library, {})]
        if not done:
            errors = [r[library]["error"] for r in boosted if "error" in r.get(library, {})]
            if errors:
                summary[f"{library}_error"] = errors[0].strip().splitlines()[-1]
            continue
        summary[library] = {k: mean_of(r["scores"][k] for r in done) for k in done[0]["scores"]}
        summary[f"{library}_seconds"] = mean_of(fit_seconds(r) for r in done)


# --------------------------------------------------------------------------- the markdown table

def fmt(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


def scores_cell(task: str, scores: dict | None, error: str | None = None) -> str:
    if not scores:
        return f"failed: {error[:120]}" if error else "—"
    if task == "classification":
        return f"acc {fmt(scores['accuracy'])}, AUC {fmt(scores.get('auc_exact', scores.get('auc')))}"
    return f"RMSE {scores['rmse']:.4g}, MAE {scores['mae']:.4g}"


def gap_cell(task: str, gap) -> str:
    if gap is None:
        return "—"
    return f"{gap:+.1f} pt" if task == "classification" else f"{gap:+.0f} %"


def peer_cell(task: str, scores: dict | None, error: str | None, gap) -> str:
    """A library's scores and questlearn's gap to it; why it has none; or "—" (a run from before it was added)."""
    cell = scores_cell(task, scores, error)
    return f"{cell} ({gap_cell(task, gap)})" if scores else cell


def table(entries: dict) -> str:
    """One row per table: questlearn's scores, each library's with the gap to it, the gap to the best, seconds."""
    lines = ["| data set | rows | task | scored | seeds | questlearn | HistGB (gap) | LightGBM (gap) | CatBoost (gap) "
             "| gap to the best (which) | baseline | train s (process) | fit s HistGB / LightGBM / CatBoost "
             "| train s today / reference (ratio) |",
             "|---" * 14 + "|"]
    for name, entry in entries.items():
        s, task = entry["summary"], entry["task"]
        ours = scores_cell(task, s.get("questlearn"), s.get("questlearn_error"))
        if "bayes" in s:
            ours += f" (Bayes acc {fmt(s['bayes']['accuracy'])}, AUC {fmt(s['bayes']['auc'])})"
        hist = peer_cell(task, s.get("boosting"), s.get("boosting_error"), s.get("gap"))
        if "draw of its own" in s.get("boosting_rows_from", ""):
            hist += " (own draw)"
        libraries = [peer_cell(task, s.get(lib), s.get(f"{lib}_error"), s.get(f"{lib}_gap")) for lib in LIBRARIES]
        best = f"{gap_cell(task, s['best_gap'])} ({s['best_boosting']})" if "best_gap" in s else "—"
        base = s.get("baseline")
        baseline = ("—" if not base else f"acc {fmt(base['accuracy'])}" if task == "classification"
                    else f"RMSE {base['rmse']:.4g}")
        fits = " / ".join(fmt(s.get(k), 2) for k in ("boosting_seconds", *(f"{lib}_seconds" for lib in LIBRARIES)))
        timing = entry.get("train_timing")
        timed = (f"{fmt(timing['today_median_seconds'], 1)} / {fmt(timing['reference_median_seconds'], 1)} "
                 f"({fmt(timing.get('ratio'), 2)}×)" if timing and "error" not in timing
                 else f"failed: {timing['error'][:80]}" if timing else "—")
        cells = [name, f"{entry['rows']:,}", f"{task[:5]}.", entry.get("scored_subset", "validate"), str(s["seeds"]),
                 ours, hist, *libraries, best, baseline, fmt(s.get("questlearn_train_seconds"), 1), fits, timed]
        lines.append("| " + " | ".join(cells).replace("\n", " ") + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the summary lines

def overall(entries: dict) -> dict:
    """Per task and peer, the median and the worst gap over the real tables; the time to a model."""
    summary = {}
    real = {n: e for n, e in entries.items() if n != "synth_quest"}  # the synthetic log is reported on its own
    for task in ("classification", "regression"):
        worst_of = min if task == "classification" else max
        per_peer = {}
        for peer in PEERS:
            key = "gap" if peer == "gbdt" else f"{peer}_gap"
            gaps = {n: e["summary"][key] for n, e in real.items() if e["task"] == task and key in e["summary"]}
            if gaps:
                worst = worst_of(gaps, key=gaps.get)
                per_peer[peer] = {"median": statistics.median(gaps.values()), "worst": gaps[worst],
                                  "worst_set": worst, "sets": len(gaps)}
        if per_peer:
            summary[task] = {"unit": UNITS[task], "vs": per_peer}
    summary["time_to_model"] = time_to_model(entries)
    summary["questlearn_failed"] = {n: e["summary"]["questlearn_error"] for n, e in entries.items()
                                    if "questlearn_error" in e["summary"]}
    return summary


def time_to_model(entries: dict) -> dict:
    """Median ``questlearn train`` process seconds over the tables under SMALL_TABLE_ROWS rows, and, where the
    run timed a reference checkout too, both medians of those tables and the median per-table ratio."""
    small = {n: e for n, e in entries.items() if e["rows"] < SMALL_TABLE_ROWS}
    result = {"under_rows": SMALL_TABLE_ROWS,
              "median_train_seconds": median_of(e["summary"].get("questlearn_train_seconds") for e in small.values()),
              "sets": sorted(n for n, e in small.items() if e["summary"].get("questlearn_train_seconds") is not None)}
    timed = {n: e["train_timing"] for n, e in small.items() if "ratio" in e.get("train_timing", {})}
    if timed:
        result["side_by_side"] = {
            "sets": sorted(timed), "reference": next(iter(timed.values()))["reference"],
            "today_median_seconds": median_of(t["today_median_seconds"] for t in timed.values()),
            "reference_median_seconds": median_of(t["reference_median_seconds"] for t in timed.values()),
            "median_ratio": median_of(t["ratio"] for t in timed.values()),
            "ratio_means": "today's train seconds / the reference's, per table (below 1: today's is quicker)"}
    return result


def summary_lines(summary: dict) -> str:
    """The summary as a few readable lines."""
    lines = []
    for task, unit in (("classification", "pt"), ("regression", "% RMSE")):
        if task not in summary:
            continue
        for peer, figures in summary[task]["vs"].items():
            name = {"gbdt": "HistGradientBoosting", "lightgbm": "LightGBM", "catboost": "CatBoost",
                    "best": "the best of three"}[peer]
            lines.append(f"{task}, vs {name}: median {figures['median']:+.1f} {unit}, worst {figures['worst']:+.1f} "
                         f"{unit} ({figures['worst_set']}), {figures['sets']} tables")
    timing = summary["time_to_model"]
    lines.append(f"time to a model, tables under {timing['under_rows']:,} rows: median questlearn train "
                 f"{fmt(timing['median_train_seconds'], 1)} s ({len(timing['sets'])} tables)")
    if "side_by_side" in timing:
        side = timing["side_by_side"]
        lines.append(f"side by side with {side['reference']}: median {fmt(side['today_median_seconds'], 1)} s today, "
                     f"{fmt(side['reference_median_seconds'], 1)} s the reference, median ratio "
                     f"{fmt(side['median_ratio'], 2)}× ({len(side['sets'])} tables)")
    if summary["questlearn_failed"]:
        lines.append(f"questlearn failed on: {', '.join(summary['questlearn_failed'])}")
    return "\n".join(lines)
