"""How many cores other processes keep busy, read from /proc, so that an in-process model
can run on the cores left free (see :class:`CpuWatch` for why)."""

from __future__ import annotations

import os
import threading
import time


def _cpu_sample() -> tuple[int, int, int] | None:
    """(busy, total) jiffies of the whole machine and this process's own, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            vals = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = vals[3] + vals[4]  # idle + iowait
    own = int(fields[11]) + int(fields[12])  # utime + stime, same clock ticks
    return sum(vals) - idle, sum(vals), own


def others_cores(prev: tuple[int, int, int], cur: tuple[int, int, int], cores: int) -> float:
    """Cores' worth of CPU time used by other processes between two _cpu_sample()s.

    >>> others_cores((100, 200, 10), (250, 400, 60), 2)  # 150 busy of 200, 50 ours
    1.0
    """
    busy, total, own = (c - p for c, p in zip(cur, prev, strict=True))
    return max(busy - own, 0) / total * cores if total > 0 else 0.0


class CpuWatch:
    """How many cores other processes keep busy, measured every second from /proc.

    Why: llama.cpp's threads wait for each other at every layer. When another job holds a
    core, a second llama.cpp thread is descheduled at each barrier and decoding collapses
    (measured here with a concurrent index build: 2 threads decode at 0.6–3 tokens/s, 1
    thread at 15–24). So a model with ``llm_threads = 0`` uses all cores when they are
    free and leaves the busy ones alone (docs/benchmarks.md, "Generation").
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.cores = os.cpu_count() or 1
        self.others = 0.0  # cores' worth of CPU time other processes used, last interval
        self.available = _cpu_sample() is not None
        self._interval = interval
        if self.available:
            threading.Thread(target=self._run, name="legalrag-cpuwatch", daemon=True).start()

    def _run(self) -> None:
        prev = _cpu_sample()
        while True:
            time.sleep(self._interval)
            cur = _cpu_sample()
            if prev is None or cur is None or cur[1] <= prev[1]:
                prev = cur
                continue
            self.others = others_cores(prev, cur, self.cores)
            prev = cur

    def threads(self) -> int:
        """Threads to run on: the cores the other processes leave free, at least one."""
        return max(1, min(self.cores, round(self.cores - self.others)))


_WATCH: CpuWatch | None = None
_WATCH_LOCK = threading.Lock()


def cpu_watch() -> CpuWatch:
    """The process's one CpuWatch, started on first use."""
    global _WATCH
    with _WATCH_LOCK:
        if _WATCH is None:
            _WATCH = CpuWatch()
        return _WATCH
