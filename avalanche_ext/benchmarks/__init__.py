"""Offline continual-learning benchmarks: ``build_benchmark(name, scenario, seed=...)``."""

from .catalogue import BENCHMARKS, BenchmarkSpec, UnknownNameError, build_benchmark, get_spec
from .errors import CorruptDataError, DataNotFoundError
from .sources import Source
from .streams import SCENARIOS, Stream

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "CorruptDataError",
    "DataNotFoundError",
    "SCENARIOS",
    "Source",
    "Stream",
    "UnknownNameError",
    "build_benchmark",
    "get_spec",
]
