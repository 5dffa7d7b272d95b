"""`RemainingTime`: the time left of a training run, from the pace of its latest steps.

Dividing the time since the run started by the steps done counts the run's setup (describing the
photos, encoding them, building image prefixes) as if every step cost as much: the first events of
a 40-second job said 322 s left. Here the pace is that of the steps in a sliding window, so it is
the steady per-step cost as soon as two steps are done.

Not here: smoothing across epochs of different cost; the window just follows them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_STEPS = 20
"""How many of the latest steps set the pace."""


class RemainingTime:
    """Seconds left, given how many of `total` steps are done."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.clock = clock
        self.started = clock()
        self._marks: deque[tuple[int, float]] = deque(maxlen=WINDOW_STEPS + 1)

    def after(self, done: int) -> float:
        """Record that `done` steps are finished now; the seconds the rest will take."""
        now = self.clock()
        self._marks.append((done, now))
        if len(self._marks) == 1:  # one step timed: all there is to go by
            pace = (now - self.started) / max(done, 1)
        else:  # the first step's setup falls out of the window
            (first_done, first_time), (last_done, last_time) = self._marks[0], self._marks[-1]
            pace = (last_time - first_time) / max(last_done - first_done, 1)
        return pace * max(self.total - done, 0)
