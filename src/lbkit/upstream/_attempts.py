"""The attempts of one request (``proxy_next_upstream``), as a sync and an async iterator.

One core (:class:`Attempts`) decides what the next step is; :class:`AsyncAttempts` is a thin
``async for`` shell around it (choosing a peer never waits, so there is nothing to await).
Both give back an unreported peer however the loop ends: ``break`` or an exception in the
body (the iterator is dropped), ``close()``/``aclose()``, ``with``/``async with`` exit, or a
cancelled task.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from lbkit.errors import ConfigError, TriesExhausted, UsageError
from lbkit.upstream._peers import Peer, RequestState

if TYPE_CHECKING:
    from lbkit.upstream._upstream import Upstream

__all__ = ["AsyncAttempts", "Attempts"]


def _check_limits(tries: object, timeout: object) -> None:
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 0:
        raise ConfigError(f"invalid tries={tries!r}: expected an integer >= 0 (0: no limit)")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not timeout > 0
        or math.isinf(timeout)
    ):
        raise ConfigError(f"invalid timeout={timeout!r}: expected seconds > 0, or None")


class Attempts:
    """Iterator over the peers tried for one request; also a context manager.

    Thread safety: one request's attempts belong to one thread (or task) at a time; the
    upstream they come from is shared and locked.
    """

    __slots__ = (
        "__weakref__",
        "_count",
        "_current",
        "_done",
        "_started",
        "_upstream",
        "request",
        "timeout",
        "tries",
    )

    def __init__(
        self,
        upstream: Upstream,
        request: RequestState,
        *,
        tries: int = 0,
        timeout: float | None = None,
    ) -> None:
        _check_limits(tries, timeout)
        self._upstream = upstream
        self.request = request
        self.tries = tries
        self.timeout = timeout
        self._current: Peer | None = None
        self._count = 0
        self._started: float | None = None
        self._done = False

    def __iter__(self) -> Attempts:
        return self

    def _limit_reached(self) -> bool:
        if self.request.tries_left == 0:
            return True
        if self.tries and self._count >= self.tries:
            return True
        return (
            self.timeout is not None
            and self._started is not None
            and self._upstream._clock() - self._started >= self.timeout
        )

    def __next__(self) -> Peer:
        if self._done:
            raise StopIteration
        upstream = self._upstream
        last = self._current
        if last is not None:
            self._current = None
            if not last.reported:
                # Count the unreported attempt as failed so no connection is leaked.
                self._done = True
                upstream.done(last, failed=True)
                raise UsageError(
                    f"{last!r} was not reported: call done(peer, failed=...) before the next "
                    "attempt"
                )
            if not (last.failed or last.retry):
                self._done = True
                raise StopIteration
            if self._limit_reached():
                self._done = True
                if last.failed:
                    raise TriesExhausted(
                        f"no live upstreams in upstream {upstream.name!r}: every try failed "
                        f"(last: {last.name})"
                    )
                raise StopIteration
        try:
            peer = upstream._get(self.request)
        except BaseException:
            self._done = True
            raise
        if self._started is None:
            self._started = upstream._clock()
        self._count += 1
        self._current = peer
        return peer

    def close(self) -> None:
        """End the loop; an unreported peer is given back (see :meth:`Upstream.give_back`)."""
        self._done = True
        peer, self._current = self._current, None
        if peer is not None and not peer.reported:
            self._upstream.give_back(peer)

    def __enter__(self) -> Attempts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        peer = self._current
        if isinstance(exc, Exception) and peer is not None and not peer.reported:
            # An error escaping the body while talking to the peer counts as its failure.
            self._upstream.done(peer, failed=True)
        self.close()

    def __del__(self) -> None:
        peer = getattr(self, "_current", None)
        if peer is not None and not peer.reported:
            self.close()


class AsyncAttempts:
    """``async for`` over the peers tried for one request; also an async context manager.

    Cancellation-safe: the first step registers a done-callback on the running task, so
    when the task ends (cancelled while awaiting a backend, or any other way) the peer it
    holds is given back before anyone awaiting the task resumes; ``async with`` gives it
    back at once. The callback holds only a weak reference and is removed when the loop
    ends normally.
    """

    __slots__ = ("_sync", "_task", "_watch")

    def __init__(
        self,
        upstream: Upstream,
        request: RequestState,
        *,
        tries: int = 0,
        timeout: float | None = None,
    ) -> None:
        self._sync = Attempts(upstream, request, tries=tries, timeout=timeout)
        self._task: asyncio.Task[object] | None = None
        self._watch: object = None

    def __aiter__(self) -> AsyncAttempts:
        return self

    def _watch_task(self) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - __anext__ always runs inside a task
            return
        ref = weakref.ref(self._sync)

        def give_back(_: object) -> None:
            attempts = ref()
            if attempts is not None:
                attempts.close()

        task.add_done_callback(give_back)
        self._task, self._watch = task, give_back

    def _unwatch(self) -> None:
        if self._task is not None:
            self._task.remove_done_callback(self._watch)  # type: ignore[arg-type]
            self._task = self._watch = None

    async def __anext__(self) -> Peer:
        if self._task is None:
            self._watch_task()
        try:
            return next(self._sync)
        except BaseException as exc:
            self._unwatch()
            if isinstance(exc, StopIteration):
                raise StopAsyncIteration from None
            raise

    async def aclose(self) -> None:
        """End the loop; an unreported peer is given back."""
        self._unwatch()
        self._sync.close()

    async def __aenter__(self) -> AsyncAttempts:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unwatch()
        self._sync.__exit__(exc_type, exc, tb)
