"""NAB scorer: hand-checked weights, null and perfect detectors, threshold sweep; the runner."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detectors import nab
from detectors.nab import PROFILES, FileParts, normalised, prepare_file, sweep

STANDARD = PROFILES["standard"]
N = 1000  # rows per synthetic file: probation is 150 rows
WINDOW = (400, 499)  # width 100


def sig(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def parts(scores: dict[int, float], windows: list[tuple[int, int]] = [WINDOW]) -> FileParts:  # noqa: B006
    times = [float(i) for i in range(N)]
    row_scores = [scores.get(i, 0.0) for i in range(N)]
    return prepare_file("cat/f.csv", times, row_scores, [(float(a), float(b)) for a, b in windows])


def total(p: FileParts, threshold: float = 0.5) -> float:
    return nab._file_total(p, threshold, STANDARD)


def test_scaled_sigmoid_hand_values() -> None:
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514305)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(-0.9999993881)
    assert nab.scaled_sigmoid(3.01) == -1.0


def test_probationary_length() -> None:
    assert nab.probationary_length(1000) == 150
    assert nab.probationary_length(4032) == 604
    assert nab.probationary_length(22695) == 750  # capped at 15 % of 5000


def test_detection_at_window_start_is_worth_one_tp() -> None:
    assert total(parts({400: 1.0})) == pytest.approx(1.0)


def test_later_detection_in_window_is_worth_less() -> None:
    # Row 450: (R - i + 1) / W = 50 / 100, so sig(-0.5) / sig(-1) = 0.848283 / 0.986614.
    assert total(parts({450: 1.0})) == pytest.approx(0.8598, abs=1e-4)
    assert total(parts({499: 1.0})) == pytest.approx(sig(-0.01) / sig(-1.0))


def test_only_the_earliest_detection_of_a_window_counts() -> None:
    assert total(parts({400: 1.0, 450: 1.0, 499: 1.0})) == pytest.approx(1.0)


def test_missed_window_costs_fn() -> None:
    assert total(parts({})) == pytest.approx(-1.0)
    assert nab._file_total(parts({}), 0.5, PROFILES["reward_low_FN"]) == pytest.approx(-2.0)


def test_false_positive_before_any_window_costs_full_fp() -> None:
    assert total(parts({200: 1.0, 400: 1.0})) == pytest.approx(1.0 - 0.11)
    assert nab._file_total(parts({200: 1.0, 400: 1.0}), 0.5, PROFILES["reward_low_FP"]) == (
        pytest.approx(1.0 - 0.22)
    )


def test_false_positive_after_a_window_is_weighted_by_distance() -> None:
    # Row 549: |499 - 549| / (100 - 1) past the window's right edge.
    expected = 1.0 + 0.11 * sig(50 / 99)
    assert total(parts({400: 1.0, 549: 1.0})) == pytest.approx(expected)
    assert expected == pytest.approx(1.0 - 0.11 * 0.8520, abs=1e-4)
    # Right after the window it costs almost nothing; far after it costs the full fp.
    assert total(parts({400: 1.0, 500: 1.0})) > 1.0 - 0.01
    assert total(parts({400: 1.0, 900: 1.0})) == pytest.approx(1.0 - 0.11)


def test_probationary_rows_are_not_scored() -> None:
    assert total(parts({100: 1.0, 400: 1.0})) == pytest.approx(1.0)
    # A window inside probation still exists: detecting it gives 0, missing it costs fn.
    assert total(parts({50: 1.0}, windows=[(40, 60)])) == pytest.approx(0.0)
    assert total(parts({}, windows=[(40, 60)])) == pytest.approx(-1.0)


def test_null_detector_scores_zero_and_perfect_detector_100() -> None:
    windows = [[(300, 349), (700, 799)], [(400, 499)], []]
    null = [parts({}, w) for w in windows]
    perfect = [parts({a: 1.0 for a, _ in w}, w) for w in windows]
    for profile in PROFILES.values():
        assert normalised(sweep(null, profile)[1], 3, profile) == pytest.approx(0.0)
        assert normalised(sweep(perfect, profile)[1], 3, profile) == pytest.approx(100.0)
    report = nab.score_parts(perfect)
    assert [r["score"] for r in report.values()] == pytest.approx([100.0] * 3)


def test_sweep_picks_the_best_global_threshold() -> None:
    # 5 FPs at 0.9 and the only TP at 0.8: taking both (1 - 0.55) beats nothing (-1).
    p = parts({**{200 + i: 0.9 for i in range(5)}, 400: 0.8})
    assert sweep([p], STANDARD) == (0.8, pytest.approx(0.45))
    # 20 FPs at 0.9 cost more than the window is worth: detect nothing at all.
    p = parts({**{200 + i: 0.9 for i in range(20)}, 400: 0.8})
    assert sweep([p], STANDARD) == (math.inf, pytest.approx(-1.0))
    # An all-zero detector can detect everything or nothing; nothing is better.
    assert sweep([parts({})], STANDARD) == (math.inf, pytest.approx(-1.0))


def test_sweep_total_matches_fixed_threshold_scoring() -> None:
    files = [parts({200: 0.7, 420: 0.6, 450: 0.9, 600: 0.65}), parts({410: 0.3, 800: 0.95})]
    threshold, best = sweep(files, STANDARD)
    assert best == pytest.approx(sum(nab._file_total(p, threshold, STANDARD) for p in files))
    for candidate in (0.3, 0.6, 0.65, 0.7, 0.9, 0.95):
        assert sum(nab._file_total(p, candidate, STANDARD) for p in files) <= best + 1e-12


def _write_corpus(root: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    stamp = [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(N)]
    labels = {}
    for name, spike in (("a.csv", 700), ("b.csv", None)):
        path = root / "data" / "cat" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value"])
            for i in range(N):
                writer.writerow([stamp[i], 100.0 if i == spike else 10.0 + (i % 7) * 0.1])
        labels[f"cat/{name}"] = (
            [[stamp[660] + ".000000", stamp[740] + ".000000"]] if spike else []
        )
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))


def test_run_and_score_a_small_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_corpus(tmp_path / "nab")
    out = tmp_path / "out"
    result = nab.main(tmp_path / "nab", out)
    with (out / "cat" / "a.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
    assert result["run"]["files"] == 2
    # The spike is found near the start of its window: close to a perfect score.
    assert result["scores"]["standard"]["score"] > 90.0
    printed = capsys.readouterr().out
    assert "standard" in printed
    assert "reward_low_FN" in printed


NAB_ROOT = Path(__file__).resolve().parents[3] / "shared" / "nab"
# The corpus ships in ../shared/nab beside every checkout (CI included): a missing corpus is a
# failure to see, not a reason to skip.
needs_nab = pytest.mark.slow


def _score_corpus(make_scorer: object) -> dict:
    windows = nab.load_windows(NAB_ROOT / "labels" / "combined_windows.json")
    files = []
    for key in sorted(windows):
        score = make_scorer()  # type: ignore[operator]
        times, scores = [], []
        with (NAB_ROOT / "data" / key).open() as fh:
            for row in csv.DictReader(fh):
                t = nab.parse_time(row["timestamp"])
                times.append(t)
                scores.append(score(float(row["value"]), t))
        files.append(prepare_file(key, times, scores, windows[key]))
    return nab.score_parts(files)


@pytest.mark.slow
@needs_nab
def test_scorer_reproduces_the_published_river_sad_figure() -> None:
    """REFERENCE.md: River's StandardAbsoluteDeviation on the raw value scores 40.6."""
    from river import anomaly

    def make() -> object:
        model = anomaly.StandardAbsoluteDeviation()

        def score(x: float, t: float) -> float:
            s = model.score_one(None, x)
            model.learn_one(None, x)
            return s / (1.0 + s)

        return score

    assert _score_corpus(make)["standard"]["score"] == pytest.approx(40.6, abs=0.05)


@pytest.mark.slow
@needs_nab
def test_detector_beats_the_target_on_nab() -> None:
    from detectors import MetricAnomalyDetector

    report = _score_corpus(lambda: MetricAnomalyDetector().update)
    assert report["standard"]["score"] >= 60.0
