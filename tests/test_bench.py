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
