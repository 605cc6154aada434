"""Benchmark harness: ``python -m mmcourse bench [--json] [NAME ...]`` (introduced in notebook 00).

Each benchmark times competing implementations side by side in one process,
with warm-up and repeats, and reports medians and ratios. A benchmark lives in
the module whose code it measures, as a function ``benchmark() -> BenchResult``,
and is listed in ``BENCHMARKS`` below. Targets from the issues are printed as
"meets" or "misses", never asserted: the machine is small, shared and noisy.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# name -> "module:function"; the module is imported only when the benchmark runs.
BENCHMARKS = {
    "augment": "mmcourse.data.augment:benchmark",
    "conv": "mmcourse.scratch.cnn:benchmark",
    "audio": "mmcourse.scratch.audio:audio_benchmark",
    "fusion": "mmcourse.apps.benchmarks:fusion",
    "pipeline": "mmcourse.apps.benchmarks:pipeline",
    "relations": "mmcourse.apps.benchmarks:relations",
    "clip": "mmcourse.apps.benchmarks:clip",
    "decode": "mmcourse.apps.benchmarks:decode",
    "serve": "mmcourse.apps.benchmarks:serve",
    "hub": "mmcourse.train.hub:benchmark",
    "search": "mmcourse.apps.serve_clip:search_benchmark",
    "serve-load": "mmcourse.apps.serve_load:benchmark",
    "lora": "mmcourse.apps.finetune:benchmark",
    "quantize": "mmcourse.apps.quantize:benchmark",
}


@dataclass
class Timing:
    """The measured time of one implementation."""

    name: str
    median_s: float
    min_s: float
    repeats: int
    items_per_s: float | None = None


@dataclass
class Ratio:
    """A ratio between two measurements, with the issue's target if it has one.

    ``higher_is_better`` says which side of ``target`` meets it.
    """

    name: str
    value: float
    target: float | None = None
    higher_is_better: bool = True

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        met = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return "meets target" if met else "misses target"


@dataclass
class BenchResult:
    """What a benchmark returns: timings, ratios, and free-form facts (accuracy, params)."""

    name: str
    description: str
    timings: list[Timing] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        for ratio, item in zip(self.ratios, data["ratios"], strict=True):
            item["verdict"] = ratio.verdict
        return data


def time_candidates(candidates: dict[str, Callable[[], object]], repeats: int = 5,
                    warmup: int = 1, items: int | None = None) -> list[Timing]:
    """Time each zero-argument callable, interleaved round by round so that machine
    noise hits every candidate alike. ``items`` is the work per call (e.g. images)."""
    if not candidates:
        raise ValueError("candidates must name at least one callable")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for function in candidates.values():
        for _ in range(warmup):
            function()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, function in candidates.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    timings = []
    for name, times in samples.items():
        median = statistics.median(times)
        rate = items / median if items and median > 0 else None
        timings.append(Timing(name, median, min(times), repeats, rate))
    return timings


def speedup(timings: list[Timing], slow: str, fast: str) -> float:
    """How many times faster ``fast`` ran than ``slow`` (ratio of medians)."""
    by_name = {t.name: t for t in timings}
    return by_name[slow].median_s / by_name[fast].median_s


def load(name: str) -> Callable[[], BenchResult]:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    module_name, function_name = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def format_result(result: BenchResult) -> str:
    lines = [f"== {result.name}: {result.description}"]
    for t in result.timings:
        rate = f"  {t.items_per_s:12.1f} items/s" if t.items_per_s else ""
        lines.append(f"  {t.name:<28} median {t.median_s * 1e3:10.2f} ms  "
                     f"min {t.min_s * 1e3:10.2f} ms{rate}")
    for key, value in result.facts.items():
        lines.append(f"  {key:<28} {value}")
    for r in result.ratios:
        target = ""
        if r.target is not None:
            sign = ">=" if r.higher_is_better else "<="
            target = f"  (target {sign} {r.target:g}: {r.verdict})"
        lines.append(f"  ratio {r.name:<22} {r.value:10.2f}{target}")
    return "\n".join(lines)
