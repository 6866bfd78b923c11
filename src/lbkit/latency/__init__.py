"""Latency tracking: one EWMA (plain and peak), least_time and power of two choices."""

from lbkit.latency._balancers import LeastTime, PowerOfTwo
from lbkit.latency._ewma import Ewma, PeakEwma, check_sample, ewma_update

__all__ = ["Ewma", "LeastTime", "PeakEwma", "PowerOfTwo", "check_sample", "ewma_update"]
