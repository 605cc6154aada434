"""The benchmark harness (mmcourse.bench) and its command line."""

import json

import pytest

from mmcourse import bench
from mmcourse.__main__ import main


def test_time_candidates_reports_every_candidate():
    calls = {"a": 0, "b": 0}

    def make(name):
        def run():
            calls[name] += 1
        return run

    timings = bench.time_candidates({"a": make("a"), "b": make("b")}, repeats=3, warmup=2, items=10)
    assert [t.name for t in timings] == ["a", "b"]
    assert calls == {"a": 5, "b": 5}
    assert all(t.repeats == 3 and t.min_s <= t.median_s for t in timings)


def test_speedup_is_a_ratio_of_medians():
    timings = [bench.Timing("slow", 2.0, 1.0, 1), bench.Timing("fast", 0.5, 0.5, 1)]
    assert bench.speedup(timings, slow="slow", fast="fast") == 4.0


@pytest.mark.parametrize(("value", "higher", "verdict"), [
    (6.0, True, "meets target"), (4.0, True, "misses target"),
    (4.0, False, "meets target"), (6.0, False, "misses target"),
])
def test_ratio_verdict(value, higher, verdict):
    assert bench.Ratio("r", value, target=5.0, higher_is_better=higher).verdict == verdict


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        bench.time_candidates({})
    with pytest.raises(ValueError, match="repeats >= 1"):
        bench.time_candidates({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        bench.load("nope")


def fake_benchmark():
    timings = bench.time_candidates({"x": lambda: None}, repeats=2)
    return bench.BenchResult("fake", "a test benchmark", timings,
                             [bench.Ratio("x/x", 1.0, target=0.5)], {"note": "hi"})


def test_cli_json_prints_json_only(monkeypatch, capsys):
    monkeypatch.setitem(bench.BENCHMARKS, "fake", "tests.test_bench:fake_benchmark")
    assert main(["bench", "--json", "fake"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fake"]["ratios"][0]["verdict"] == "meets target"
    assert report["fake"]["facts"] == {"note": "hi"}


def test_cli_text_report_and_unknown_name(monkeypatch, capsys):
    monkeypatch.setitem(bench.BENCHMARKS, "fake", "tests.test_bench:fake_benchmark")
    assert main(["bench", "fake"]) == 0
    out = capsys.readouterr().out
    assert "== fake: a test benchmark" in out and "target >= 0.5: meets target" in out
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


# --- the worst of several seeds (issue 25: bench relations reports it beside the mean) -----

# Issue 25's transformer runs, seeds 0-2: relational 0.884, 0.955, 0.739. By hand: mean
# 2.578 / 3 = 0.859333; deviations 0.024667, 0.095667, -0.120333, squares summing to
# 0.024241, / 2 = 0.012120, sqrt = 0.110092 (the issue's "0.860 ± 0.110").
ISSUE_RELATIONAL = {2: 0.739, 0: 0.884, 1: 0.955}


def test_seed_summary_reports_the_worst_seed_beside_the_mean():
    from mmcourse import stats

    summary = stats.seed_summary(ISSUE_RELATIONAL)
    assert summary["mean"] == pytest.approx(0.859333, abs=1e-6)
    assert summary["std"] == pytest.approx(0.110092, abs=1e-6)
    assert (summary["worst"], summary["worst_seed"]) == (0.739, 2)
    assert summary["seeds"] == [0, 1, 2] and summary["values"] == [0.884, 0.955, 0.739]
    slowest = stats.seed_summary({0: 482.0, 1: 658.0, 2: 600.0}, higher_is_better=False)
    assert (slowest["worst"], slowest["worst_seed"]) == (658.0, 1)
    tie = stats.seed_summary({5: 0.9, 3: 0.8, 4: 0.8})
    assert (tie["worst"], tie["worst_seed"]) == (0.8, 3)
    one = stats.seed_summary({7: 0.5})
    assert (one["mean"], one["std"], one["worst_seed"]) == (0.5, 0.0, 7)


@pytest.mark.parametrize("values", [{}, [0.9, 0.8], {0: float("nan")}, {0: "high"}])
def test_seed_summary_bad_values(values):
    from mmcourse import stats

    with pytest.raises(ValueError, match="values must be"):
        stats.seed_summary(values)


def _run(relational, non_relational, seconds, seed=0):
    return {"accuracy_by_type": {"relational": relational, "non_relational": non_relational},
            "train_seconds": seconds, "seconds_per_epoch": seconds / 15, "epochs_run": 15,
            "train_examples": 40000, "params": 119622, "seed": seed}


def test_relations_report_judges_the_targets_on_the_worst_seed():
    from mmcourse.apps import benchmarks

    best = {0: _run(0.884, 0.998, 482.0), 1: _run(0.955, 0.999, 658.0),
            2: _run(0.739, 0.997, 600.0)}
    result = benchmarks.relations_report(best, _run(0.514, 0.77, 277.0))
    ratios = {r.name: r for r in result.ratios}
    assert ratios["worst relational / 0.95"].value == pytest.approx(0.739 / 0.95)
    assert ratios["worst relational / 0.95"].verdict == "misses target"
    assert ratios["mean relational / 0.95"].value == pytest.approx(0.859333 / 0.95, abs=1e-6)
    assert ratios["worst non-relational / 0.98"].value == pytest.approx(0.997 / 0.98)
    assert ratios["worst non-relational / 0.98"].verdict == "meets target"
    assert ratios["slowest train s / 300 s"].value == pytest.approx(658 / 300)
    assert ratios["relational mean/baseline"].value == pytest.approx(0.859333 / 0.514,
                                                                      abs=1e-5)
    facts = result.facts
    assert facts["seeds"] == [0, 1, 2]
    assert facts["transformer relational"] == ("mean 0.859 ± 0.110, worst 0.739 (seed 2) "
                                               "of 3 seeds")
    assert facts["transformer train-seconds"].startswith("mean 580 ± 90 s, slowest 658 s "
                                                         "(seed 1)")
    assert "transformer seed 2" in facts and "relational 0.739" in facts["transformer seed 2"]
    assert [t.name for t in result.timings][-1] == "cnn_mlp: one epoch"
    # times by hand: deviations -98, 78, 20 from 580, squares 16088 / 2, sqrt = 89.7
    # every seed at 0.96 meets the target; one seed at 0.94 misses it, whatever the mean
    good = {s: _run(0.96, 0.99, 200.0) for s in range(3)}
    assert {r.name: r for r in benchmarks.relations_report(good, _run(0.5, 0.7, 100.0))
            .ratios}["worst relational / 0.95"].verdict == "meets target"
    one_bad = {**good, 1: _run(0.94, 0.99, 200.0)}
    assert {r.name: r for r in benchmarks.relations_report(one_bad, _run(0.5, 0.7, 100.0))
            .ratios}["worst relational / 0.95"].verdict == "misses target"


def test_relations_benchmark_bad_seeds():
    from mmcourse.apps import benchmarks

    with pytest.raises(ValueError, match="seeds must be"):
        benchmarks.relations(seeds=())
    with pytest.raises(ValueError, match="best must be"):
        benchmarks.relations_report({}, _run(0.5, 0.7, 100.0))
