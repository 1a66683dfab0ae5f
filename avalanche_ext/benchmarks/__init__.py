"""Offline continual-learning benchmarks: ``build_benchmark(name, scenario, seed=...)``."""

from .catalogue import BENCHMARKS, BenchmarkSpec, UnknownNameError, build_benchmark, get_spec
from .core50 import CORe50Files
from .errors import CorruptDataError, DataNotFoundError
from .imagefiles import FileStream
from .sources import LAYOUTS, Source
from .streams import SCENARIOS, Stream
from .tinyimagenet import TinyImageNetFiles

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "CORe50Files",
    "CorruptDataError",
    "DataNotFoundError",
    "FileStream",
    "LAYOUTS",
    "SCENARIOS",
    "Source",
    "Stream",
    "TinyImageNetFiles",
    "UnknownNameError",
    "build_benchmark",
    "get_spec",
]
