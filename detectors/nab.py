"""Numenta Anomaly Benchmark (NAB): runner and scorer for :class:`MetricAnomalyDetector`.

The runner feeds every NAB file, row by row, to a fresh detector built with the production
defaults (one global configuration: nothing depends on the file, its category or its labels)
and writes ``OUT/<category>/<file>.csv`` with ``timestamp,value,anomaly_score``.

The scorer re-implements numenta/NAB's rules (``nab/sweeper.py``): probationary period,
scaled-sigmoid weighting of detections inside and after windows, one global threshold per
profile chosen by an exhaustive sweep to maximise the corpus total, and normalisation between
the null detector and a perfect one.

Usage::

    python -m detectors.nab --data ../shared/nab --out /tmp/nab-results
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from detectors.metric_anomaly import MetricAnomalyDetector

__all__ = [
    "PROFILES",
    "FileParts",
    "Profile",
    "main",
    "normalised",
    "prepare_file",
    "probationary_length",
    "run_nab",
    "scaled_sigmoid",
    "score_results",
    "sweep",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """Cost matrix of one NAB application profile."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN": Profile(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_PERCENT = 0.15


def parse_time(text: str) -> float:
    """NAB timestamps ('2015-02-26 21:42:53[.000000]') as UTC epoch seconds."""
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def scaled_sigmoid(y: float) -> float:
    """NAB's ``scaledSigmoid``: +1 far before a window's end, -1 well after it."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_length(n_rows: int) -> int:
    """Rows at the start of a file that are never scored (NAB: 15 %, at most 750)."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FileParts:
    """Per-row scoring material of one file, independent of profile and threshold.

    ``window[i]`` is the window index of row i within the file, or -1 outside windows.
    ``unit[i]`` is the unweighted reward of a detection at row i (TP reward already divided by
    ``sig(-1)``; FP reward negative); 0 during the probationary period.
    """

    name: str
    scores: list[float]
    window: list[int]
    unit: list[float]
    n_windows: int = field(default=0)


def prepare_file(
    name: str,
    times: Sequence[float],
    scores: Sequence[float],
    windows: Iterable[tuple[float, float]],
) -> FileParts:
    """Turn one file's rows and labelled windows into :class:`FileParts` (NAB's sweep parts)."""
    n = len(times)
    spans = []
    for start, end in windows:
        left, right = bisect_left(times, start), bisect_right(times, end) - 1
        if right >= left:  # a window with no rows cannot be detected; NAB has none
            spans.append((left, right))
    max_tp = scaled_sigmoid(-1.0)
    probation = probationary_length(n)
    window = [-1] * n
    unit = [0.0] * n
    prev: tuple[int, int] | None = None  # (right index, width) of the last window passed
    k = 0
    for i in range(n):
        if k < len(spans) and spans[k][0] <= i:
            left, right = spans[k]
            width = right - left + 1
            window[i] = k
            u = scaled_sigmoid(-(right - i + 1) / width) / max_tp
            if i == right:
                prev, k = (right, width), k + 1
        elif prev is None:
            u = -1.0
        else:
            # NAB divides by (width - 1); a 1-row window would divide by zero there too.
            u = scaled_sigmoid(abs(prev[0] - i) / max(prev[1] - 1, 1))
        unit[i] = u if i >= probation else 0.0
    return FileParts(name, list(scores), window, unit, len(spans))


def _file_total(parts: FileParts, threshold: float, profile: Profile) -> float:
    """Score of one file at a fixed threshold (detection = score >= threshold)."""
    best: dict[int, float] = {}
    total = 0.0
    for s, w, u in zip(parts.scores, parts.window, parts.unit, strict=True):
        if s < threshold:
            continue
        if w < 0:
            total += profile.fp * u
        else:
            best[w] = max(best.get(w, -math.inf), profile.tp * u)
    total += sum(best.values())
    return total - profile.fn * (parts.n_windows - len(best))


def sweep(files: Sequence[FileParts], profile: Profile) -> tuple[float, float]:
    """Exhaustive threshold sweep over the whole corpus, like NAB's sweeper.

    Returns ``(threshold, total)`` of the best threshold; ties go to the highest threshold.
    Starting with "nothing detected" (threshold above every score) means the result is never
    below the null detector's score.
    """
    rows: list[tuple[float, int, float]] = []  # (score, global window id or -1, unit)
    n_windows = 0
    for parts in files:
        for s, w, u in zip(parts.scores, parts.window, parts.unit, strict=True):
            rows.append((s, n_windows + w if w >= 0 else -1, u))
        n_windows += parts.n_windows
    rows.sort(key=lambda r: r[0], reverse=True)
    best_threshold, best_total = math.inf, -profile.fn * n_windows
    best_in_window: dict[int, float] = {}
    fp_sum = window_sum = 0.0
    for k, (s, w, u) in enumerate(rows):
        if w < 0:
            fp_sum += profile.fp * u
        else:
            v = profile.tp * u
            old = best_in_window.get(w)
            if old is None or v > old:
                best_in_window[w] = v
                window_sum += v - (old or 0.0)
        if k + 1 < len(rows) and rows[k + 1][0] == s:
            continue  # evaluate a threshold only once all rows with that score are in
        total = fp_sum + window_sum - profile.fn * (n_windows - len(best_in_window))
        if total > best_total:
            best_threshold, best_total = s, total
    return best_threshold, best_total


def normalised(total: float, n_windows: int, profile: Profile) -> float:
    """100 * (S - S_null) / (S_perfect - S_null)."""
    null, perfect = -profile.fn * n_windows, profile.tp * n_windows
    return 100.0 * (total - null) / (perfect - null)


def load_windows(labels_path: Path) -> dict[str, list[tuple[float, float]]]:
    """``combined_windows.json`` as ``{"category/file.csv": [(start, end), ...]}``."""
    raw = json.loads(labels_path.read_text())
    return {k: [(parse_time(a), parse_time(b)) for a, b in v] for k, v in raw.items()}


def read_results(path: Path) -> tuple[list[float], list[float]]:
    """Times and anomaly scores of one result file."""
    times, scores = [], []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            times.append(parse_time(row["timestamp"]))
            scores.append(float(row["anomaly_score"]))
    return times, scores


def score_results(results_dir: Path, labels_path: Path) -> dict:
    """Score a results tree (``<category>/<file>.csv`` with ``anomaly_score``) for all profiles.

    Returns ``{profile: {"threshold", "total", "score", "categories": {cat: score}}}`` where
    ``score`` is normalised; category figures use the corpus threshold of that profile.
    """
    windows = load_windows(labels_path)
    files: list[FileParts] = []
    for key in sorted(windows):
        times, scores = read_results(results_dir / key)
        files.append(prepare_file(key, times, scores, windows[key]))
    return score_parts(files)


def score_parts(files: Sequence[FileParts]) -> dict:
    """Sweep and normalise prepared files for every profile (see :func:`score_results`)."""
    n_windows = sum(p.n_windows for p in files)
    report: dict = {}
    for name, profile in PROFILES.items():
        threshold, total = sweep(files, profile)
        categories: dict[str, float] = {}
        for cat in sorted({p.name.split("/")[0] for p in files}):
            members = [p for p in files if p.name.split("/")[0] == cat]
            cat_windows = sum(p.n_windows for p in members)
            if cat_windows:
                cat_total = sum(_file_total(p, threshold, profile) for p in members)
                categories[cat] = normalised(cat_total, cat_windows, profile)
        report[name] = {
            "threshold": threshold,
            "total": total,
            "score": normalised(total, n_windows, profile),
            "categories": categories,
        }
    return report


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

DetectorFactory = Callable[[], MetricAnomalyDetector]


def run_file(src: Path, dst: Path, factory: DetectorFactory = MetricAnomalyDetector) -> int:
    """Run a fresh detector over one NAB file, causally, and write its results; returns rows."""
    detector = factory()
    dst.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        writer = csv.writer(fout)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for row in csv.DictReader(fin):
            value = float(row["value"])
            score = detector.update(value, parse_time(row["timestamp"]))
            writer.writerow([row["timestamp"], row["value"], f"{score:.9f}"])
            n += 1
    return n


def run_nab(data_dir: Path, out_dir: Path, factory: DetectorFactory = MetricAnomalyDetector) -> dict:
    """Run the detector over every ``data_dir/<category>/<file>.csv``.

    ``data_dir`` may be the NAB root (containing ``data/``) or the ``data`` folder itself.
    Returns ``{"files", "rows", "seconds", "rows_per_second"}``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if (data_dir / "data").is_dir():
        data_dir = data_dir / "data"
    started = time.perf_counter()
    files = rows = 0
    for src in sorted(data_dir.glob("*/*.csv")):
        rows += run_file(src, out_dir / src.parent.name / src.name, factory)
        files += 1
    seconds = time.perf_counter() - started
    return {"files": files, "rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


def format_report(report: dict, run: dict | None = None) -> str:
    """A readable table of normalised scores."""
    lines = [f"{'profile':<15}{'score':>8}{'realTweets':>12}{'threshold':>12}"]
    for name, r in report.items():
        tweets = r["categories"].get("realTweets", float("nan"))
        lines.append(f"{name:<15}{r['score']:>8.1f}{tweets:>12.1f}{r['threshold']:>12.6f}")
    if run:
        lines.append(
            f"{run['files']} files, {run['rows']} rows in {run['seconds']:.1f}s "
            f"({run['rows_per_second']:.0f} updates/s incl. CSV I/O)"
        )
    return "\n".join(lines)


def main(data_dir: Path, out_dir: Path) -> dict:
    """Run the production detector over NAB, score it, print a table; returns the report."""
    data_dir = Path(data_dir)
    root = data_dir.parent if data_dir.name == "data" else data_dir
    run = run_nab(data_dir, out_dir)
    report = score_results(Path(out_dir), root / "labels" / "combined_windows.json")
    print(format_report(report, run))
    for name, r in report.items():
        cats = ", ".join(f"{c} {s:.1f}" for c, s in r["categories"].items())
        print(f"  {name}: {cats}")
    return {"run": run, "scores": report}


def _cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NAB root (data/, labels/)")
    parser.add_argument("--out", type=Path, required=True, help="where results are written")
    args = parser.parse_args(argv)
    main(args.data, args.out)


if __name__ == "__main__":
    _cli()
