"""The exception hierarchy: every error lbkit raises derives from :class:`LbkitError`."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DiscoveryError",
    "EmptyRingError",
    "InvalidAddressError",
    "InvalidHostError",
    "InvalidKeyError",
    "InvalidStoreArgument",
    "KeyTypeError",
    "LbkitError",
    "NoLiveUpstreams",
    "ProtocolError",
    "RegexLimitError",
    "RequestError",
    "ResolutionError",
    "SessionConflict",
    "SessionDataError",
    "SessionInterrupted",
    "SessionLocked",
    "StoreError",
    "StoreUnavailable",
    "TriesExhausted",
    "UnknownNodeError",
    "UnknownPeerError",
    "UnsupportedOperation",
    "UsageError",
    "ValueTooLarge",
]


class LbkitError(Exception):
    """Root of every exception raised by lbkit."""


class ConfigError(LbkitError, ValueError):
    """A configuration value or directive is invalid.

    ``line`` is the 1-based line of the offending token when the value came from
    nginx configuration text, else ``None``.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        if line is not None:
            message = f"{message} (line {line})"
        super().__init__(message)


class RequestError(LbkitError, ValueError):
    """A per-request argument is invalid (e.g. ``done(elapsed=-1)``): the call did nothing.

    Distinct from :class:`ConfigError`, which is about configuration, not one request.
    """


class UnknownPeerError(LbkitError, KeyError):
    """A server name that the upstream does not have (the message lists the ones it has)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownNodeError(LbkitError, KeyError):
    """A node that is not on the ring or table (the message lists the nodes it has)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ProtocolError(LbkitError, ValueError):
    """Bytes that break a wire protocol (sharedance): the peer drops the connection."""


class KeyTypeError(RequestError, TypeError):
    """A hash key that is neither ``str`` nor ``bytes`` (or ``str`` with no UTF-8 form)."""


class InvalidAddressError(RequestError):
    """A client address given to a balancer is not an IPv4 or IPv6 address."""


class UsageError(LbkitError, RuntimeError):
    """The API was used out of order (e.g. a peer reported twice)."""


class NoLiveUpstreams(LbkitError):
    """No peer can take the request: nginx would answer 502 Bad Gateway.

    Raised when every peer is down, failed (max_fails within fail_timeout), at its
    max_conns, or already tried for this request.
    """


class TriesExhausted(NoLiveUpstreams):
    """Every peer the request may try has been tried and failed (nginx: 502)."""


class EmptyRingError(LbkitError, LookupError):
    """A lookup on a hash ring or table that has no nodes."""


class InvalidHostError(LbkitError, ValueError):
    """A Host header nginx would refuse (it answers 400 Bad Request); the message says why."""


class RegexLimitError(RequestError):
    """A server_name regex hit its bound on this request's Host (nginx: ``pcre2_match()
    failed: -47``, connection closed); the message names the pattern and the bound."""


class ResolutionError(LbkitError, LookupError):
    """A name could not be resolved (no such name, or the DNS server stopped answering)."""


class DiscoveryError(LbkitError, ConnectionError):
    """A discovery source could not read its registry (its last good view stays in force)."""


class StoreError(LbkitError):
    """Base of the session-store errors."""


class StoreUnavailable(StoreError, ConnectionError):
    """A store backend could not be reached or did not answer within its timeout.

    ``address`` names the backend (``redis://127.0.0.1:6379``, a directory...) and
    ``__cause__`` holds the underlying error.
    """

    def __init__(self, message: str, *, address: str = "") -> None:
        self.address = address
        super().__init__(message)


class SessionConflict(StoreError):
    """A versioned write lost: someone wrote the key since it was read. Re-read and retry."""


class ValueTooLarge(StoreError, ValueError):
    """A value exceeds the store's size limit (the message gives the limit)."""


class InvalidKeyError(StoreError, ValueError):
    """A key is not 1..200 characters of ``A-Z a-z 0-9 _ - : ,`` (it never reaches a backend)."""


class UnsupportedOperation(StoreError, NotImplementedError):
    """The backend's protocol cannot do this (e.g. sharedance has no per-key TTL)."""


class InvalidStoreArgument(StoreError, RequestError):
    """A store call's ``ttl``, ``if_version`` or value type is invalid: refused before any I/O."""


class SessionInterrupted(SessionConflict):
    """The session was deleted (logout, expiry) while this request used it: not re-created."""


class SessionDataError(StoreError, ValueError):
    """Stored session bytes that the serializer cannot read (bad UTF-8, JSON, PHP objects, too
    deep), data it cannot write, or a Redis key of another layout (``WRONGTYPE``)."""


class SessionLocked(StoreError, TimeoutError):
    """Another program (e.g. PHP) held the session's lock for longer than the wait allowed."""
