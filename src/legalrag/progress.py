"""Progress bars on a terminal for long stages (segment, embed, tune), with rate and ETA.

The library reports progress through a factory, ``progress(stage, total) -> tick(n)``; this
module is the terminal implementation that the CLI and the server's start-up share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TextIO

# progress(stage, total) returns a callback that is told how many items were just done.
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def no_progress(stage: str, total: int) -> Callable[[int], None]:
    """A factory that shows nothing (library calls without a display)."""
    return lambda n: None


def terminal_progress(stream: TextIO = sys.stderr, labels: Mapping[str, str] | None = None,
                      unit: str = "art", quiet: bool = False) -> ProgressFactory:
    """A factory of tqdm bars, one per stage; a new stage closes the previous bar."""
    from tqdm import tqdm

    bars: list = []

    def factory(stage: str, total: int) -> Callable[[int], None]:
        for b in bars:
            b.close()
        bars.clear()
        if quiet or total == 0:
            return lambda n: None
        label = (labels or {}).get(stage, stage)
        bar = tqdm(total=total, desc=f"{label:>8}", unit=unit, file=stream,
                   dynamic_ncols=True, mininterval=0.5)
        bars.append(bar)

        def tick(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return tick

    return factory
