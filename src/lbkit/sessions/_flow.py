"""Flows: each session decision written once, driven by a sync loop or by ``await``.

A flow is a generator that yields the store calls it needs (:class:`Call`) or a pause
(:class:`Pause`) and receives each call's result, or has the call's exception thrown in at
the ``yield``; its return value is the operation's result. :func:`run` drives a flow with
plain calls, :func:`arun` with ``await``: the sync and async classes are thin shells around
the same flow, as httpx drives one ``auth_flow`` from both of its clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any, TypeVar

import attrs

__all__ = ["Call", "Flow", "Pause", "arun", "run"]

T = TypeVar("T")


@attrs.frozen(slots=True)
class Call:
    """Call ``target.method(*args, **kwargs)`` (awaited when the flow runs async)."""

    target: Any
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Pause:
    """Wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``), e.g. a retry back-off."""

    seconds: float


Step = Call | Pause
Flow = Generator[Step, Any, T]


class _Finished(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def _advance(flow: Flow[Any], outcome: Any, failure: BaseException | None) -> Step:
    """The flow's next step after handing it an outcome or a failure; ``_Finished`` at end."""
    try:
        return flow.send(outcome) if failure is None else flow.throw(failure)
    except StopIteration as stop:
        raise _Finished(stop.value) from None


def run(flow: Flow[T]) -> T:
    """Drive ``flow`` with blocking calls; returns its result."""
    outcome: Any = None
    failure: BaseException | None = None
    try:
        while True:
            step = _advance(flow, outcome, failure)
            outcome = failure = None
            try:
                if isinstance(step, Pause):
                    time.sleep(step.seconds)
                else:
                    outcome = getattr(step.target, step.method)(*step.args, **step.kwargs)
            except Exception as exc:  # handed to the flow, which decides
                failure = exc
    except _Finished as end:
        return end.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def arun(flow: Flow[T]) -> T:
    """Drive ``flow`` with awaited calls; returns its result."""
    outcome: Any = None
    failure: BaseException | None = None
    try:
        while True:
            step = _advance(flow, outcome, failure)
            outcome = failure = None
            try:
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                else:
                    outcome = await getattr(step.target, step.method)(*step.args, **step.kwargs)
            except Exception as exc:  # handed to the flow, which decides
                failure = exc
    except _Finished as end:
        return end.value  # type: ignore[no-any-return]
    finally:
        flow.close()  # on cancellation too: the flow's finally blocks run
