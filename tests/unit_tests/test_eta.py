"""Time left of a training run: the pace of the latest steps, not the setup before the first."""

from __future__ import annotations

import pytest

from yollava_agent.training.eta import RemainingTime


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_setup_before_the_first_step_does_not_inflate_the_time_left() -> None:
    clock = FakeClock()
    eta = RemainingTime(total=40, clock=clock)
    clock.now = 30.0  # 30 s of describing, encoding and caching, then the first step
    first = eta.after(1)
    for done in range(2, 6):
        clock.now += 1.0  # then one second per step
        left = eta.after(done)
    assert first == pytest.approx(30.0 * 39)  # with one step timed, that is all there is
    assert left == pytest.approx(35.0)  # 35 steps of one second, not 35 x 6.8 s


def test_the_pace_follows_the_latest_steps() -> None:
    clock = FakeClock()
    eta = RemainingTime(total=100, clock=clock)
    for done in range(1, 31):
        clock.now += 2.0 if done <= 10 else 0.5
        left = eta.after(done)
    assert left == pytest.approx(70 * 0.5)
    clock.now += 0.5
    assert eta.after(100) == 0.0
