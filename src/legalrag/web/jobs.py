"""Progress of the index work running in the server (a build at start, an update after an
upload or a removal), as the knowledge-base panel and the terminal show it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from legalrag.progress import ProgressFactory

# Stages of an index update as people should read them; build_index reports the last two.
STAGES = {
    "write": "写入文件",
    "remove": "移出文件",
    "parse": "解析法库",
    "segment": "分词（关键词索引）",
    "embed": "计算向量（语义索引）",
    "tune": "调整查询编码器",
    "swap": "切换到新索引",
}
# What a stage counts, for progress bars: files for the first two; articles for the
# others, but the swap counts nothing (it is one step, and "1/1 条" read as one article).
UNITS = {"write": "个文件", "remove": "个文件", "swap": ""}


def stage_unit(stage: str) -> str:
    """The unit of a stage's count ("" when the count means nothing to a reader)."""
    return UNITS.get(stage, "条")


@dataclass(frozen=True)
class Job:
    """The index work running right now, as a status display shows it."""

    kind: str  # build, add, remove
    title: str  # 首次建立索引, 添加 2 个文件 …
    stage: str  # a key of STAGES
    done: int
    total: int
    started: float  # time.monotonic()

    @property
    def fraction(self) -> float | None:
        return min(self.done / self.total, 1.0) if self.total else None

    @property
    def stage_name(self) -> str:
        return STAGES.get(self.stage, self.stage)


class IndexJobs:
    """Which index build or update this process is running (the store lock allows one),
    how far it is, and how the last one ended. Shared by the UI's status panels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Job | None = None
        self.last_message = ""
        self.last_error = ""

    def current(self) -> Job | None:
        with self._lock:
            return self._job

    @contextlib.contextmanager
    def run(self, kind: str, title: str) -> Iterator[None]:
        """Record a job for the duration of the block, and how it ended."""
        with self._lock:
            self._job = Job(kind, title, "parse", 0, 0, time.monotonic())
        try:
            yield
        except BaseException as e:
            with self._lock:
                self.last_error = f"{title}：失败（{e}）"
            raise
        else:
            with self._lock:
                self.last_error = ""
        finally:
            with self._lock:
                self._job = None

    def finished(self, message: str) -> None:
        with self._lock:
            self.last_message = message

    def stage(self, stage: str, total: int = 0) -> None:
        with self._lock:
            if self._job is not None:
                self._job = Job(self._job.kind, self._job.title, stage, 0, total,
                                self._job.started)

    def _advance(self, n: int) -> None:
        with self._lock:
            if self._job is not None:
                j = self._job
                self._job = Job(j.kind, j.title, j.stage, j.done + n, j.total, j.started)

    def factory(self, forward: ProgressFactory | None = None) -> ProgressFactory:
        """A build_index progress factory that records progress here and forwards it."""

        def make(stage: str, total: int) -> Callable[[int], None]:
            self.stage(stage, total)
            tick = forward(stage, total) if forward is not None else None

            def advance(n: int) -> None:
                self._advance(n)
                if tick is not None:
                    tick(n)

            return advance

        return make
