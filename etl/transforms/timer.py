"""Seconds per named step, wall and CPU: for `etl build --timings`, dedup's stats and the benchmarks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Timer:
    """Wall and CPU seconds per step, added up when a step runs more than once.

    Either time a block (`with timer("dedup"): ...`) or mark consecutive steps
    (`timer.lap("shingle")` counts the time since the previous lap).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._start = self._wall = time.perf_counter()
        self._start_cpu = self._cpu = time.process_time()

    def _add(self, name: str, wall: float, cpu: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + wall
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._add(name, time.perf_counter() - wall, time.process_time() - cpu)

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self._add(name, wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu

    @property
    def total(self) -> float:
        return self._wall - self._start

    @property
    def total_cpu(self) -> float:
        return self._cpu - self._start_cpu

    def laps(self) -> dict[str, float]:
        """`<step>_s` and `<step>_cpu_s` for every step, as the benchmarks print them."""
        return {
            **{f"{k}_s": v for k, v in self.seconds.items()},
            **{f"{k}_cpu_s": v for k, v in self.cpu_seconds.items()},
        }
