"""Offline continual-learning benchmarks: ``build_benchmark(name, scenario, seed=...)``."""

from .catalogue import BENCHMARKS, BenchmarkSpec, UnknownNameError, build_benchmark, get_spec
from .sources import DataNotFoundError, Source
from .streams import SCENARIOS, Stream

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "DataNotFoundError",
    "SCENARIOS",
    "Source",
    "Stream",
    "UnknownNameError",
    "build_benchmark",
    "get_spec",
]
