"""``proxy_next_upstream``: whether a failed attempt goes on to the next peer (sans-I/O).

Follows ``ngx_http_upstream_next`` and ``ngx_http_upstream_test_next`` (nginx's
``ngx_http_upstream.c``):

- An error or timeout before the response header always counts as the peer's failure; the
  request goes on when the flag (``error``/``timeout``/``invalid_header``) is in
  ``proxy_next_upstream``, a try is left, the body can be sent again and
  ``proxy_next_upstream_timeout`` has not passed. When it does not, the client gets 504
  after a timeout and 502 otherwise.
- A response status of 500, 502, 503, 504, 403, 404 or 429 goes on to the next peer only
  when its ``http_NNN`` flag is set *and another try is left* (``u->peer.tries > 1``);
  then 403 and 404 are not failures (``NGX_PEER_NEXT``), the others are. Otherwise the
  response is passed to the client and the peer counts as a success.
- A POST, LOCK or PATCH whose request was sent also needs ``non_idempotent``; a request
  whose body was streamed (not kept, as ``proxy_request_buffering off``) is never sent
  twice.
"""

from __future__ import annotations

import attrs

__all__ = ["NON_IDEMPOTENT", "STATUS_FLAGS", "Attempt", "Decision", "after_error", "after_status"]

#: Methods nginx treats as non-idempotent (``NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH``).
NON_IDEMPOTENT = frozenset({"POST", "LOCK", "PATCH"})
#: Response statuses ``proxy_next_upstream`` knows (``ngx_http_upstream_next_errors``).
STATUS_FLAGS = {
    500: "http_500",
    502: "http_502",
    503: "http_503",
    504: "http_504",
    403: "http_403",
    404: "http_404",
    429: "http_429",
}
_NOT_FAILURES = frozenset({"http_403", "http_404"})
_ERROR_STATUS = {"timeout": 504, "http_504": 504, "http_500": 500, "http_503": 503,
                 "http_403": 403, "http_404": 404, "http_429": 429}  # fmt: skip


@attrs.frozen
class Attempt:
    """What the decision needs to know about the attempt that just ended.

    ``more_tries``: a peer may still be tried (nginx: ``u->peer.tries > 1`` before this
    attempt is freed); ``request_sent``: bytes of the request reached the peer;
    ``replayable``: the body is kept and can be sent again; ``elapsed``: seconds since the
    first attempt.
    """

    next_upstream: frozenset[str]
    method: str
    more_tries: bool
    request_sent: bool
    replayable: bool
    timeout: float = 0.0
    elapsed: float = 0.0


@attrs.frozen
class Decision:
    """``retry``: try the next peer; ``failed``: report this peer failed (max_fails);
    ``status``: what the client gets when there is no retry (None: the response itself)."""

    retry: bool
    failed: bool
    status: int | None


def _allowed(flag: str, attempt: Attempt) -> bool:
    mask = {flag}
    if attempt.request_sent and attempt.method.upper() in NON_IDEMPOTENT:
        mask.add("non_idempotent")
    return (
        attempt.more_tries
        and "off" not in attempt.next_upstream
        and mask <= attempt.next_upstream
        and not (attempt.request_sent and not attempt.replayable)
        and not (attempt.timeout and attempt.elapsed >= attempt.timeout)
    )


def after_error(flag: str, attempt: Attempt) -> Decision:
    """An ``error``, ``timeout`` or ``invalid_header`` before the response header."""
    return Decision(_allowed(flag, attempt), True, _ERROR_STATUS.get(flag, 502))


def after_status(status: int, attempt: Attempt) -> Decision:
    """A response header with ``status`` arrived."""
    flag = STATUS_FLAGS.get(status)
    if flag is None or not _allowed(flag, attempt):
        return Decision(False, False, None)
    return Decision(True, flag not in _NOT_FAILURES, None)
