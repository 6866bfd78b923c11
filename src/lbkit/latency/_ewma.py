"""The one exponentially weighted moving average lbkit keeps of response times."""

from __future__ import annotations

import math

import attrs

from lbkit.errors import RequestError

__all__ = ["Ewma", "PeakEwma", "check_sample", "ewma_update"]


def check_sample(sample: float) -> float:
    """``sample`` if it is a finite number of seconds >= 0, else a RequestError."""
    if (
        isinstance(sample, bool)
        or not isinstance(sample, (int, float))
        or not sample >= 0
        or math.isinf(sample)
    ):
        raise RequestError(f"invalid response time {sample!r}: expected finite seconds >= 0")
    return float(sample)


def ewma_update(prior: float | None, sample: float, alpha: float) -> float:
    """Move ``prior`` a fraction ``alpha`` of the way towards ``sample`` (the first sample,
    with no prior, is taken as it is)."""
    return sample if prior is None else prior + alpha * (sample - prior)


@attrs.define(slots=True)
class Ewma:
    """Exponentially weighted moving average of response times, decaying with time.

    A sample ``x`` taken ``dt`` seconds after the previous one moves the average by a
    factor ``1 - exp(-dt / decay)`` towards ``x``.
    """

    decay: float = 10.0
    value: float | None = None
    stamp: float = 0.0

    def observe(self, sample: float, now: float) -> None:
        """Add one response time (seconds) measured at ``now``."""
        sample = check_sample(sample)
        alpha = 1.0 - math.exp(-max(now - self.stamp, 0.0) / self.decay)
        self.value = ewma_update(self.value, sample, alpha)
        self.stamp = now

    def get(self, now: float) -> float:
        """The current average (0.0 before the first sample)."""
        return 0.0 if self.value is None else self.value


@attrs.define(slots=True)
class PeakEwma(Ewma):
    """EWMA that jumps to a sample above it at once and decays back slowly (peak EWMA)."""

    def observe(self, sample: float, now: float) -> None:
        """A higher sample replaces the average; a lower one decays it as an EWMA."""
        sample = check_sample(sample)
        if self.value is not None and sample > self.value:
            self.value = sample
            self.stamp = now
            return
        Ewma.observe(self, sample, now)
