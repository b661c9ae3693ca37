"""Retries of idempotent calls: the contract's marker, the policy and the retry budget.

`idempotent` marks a contract method as safe to run twice; `gopherpipe gen` reads
the mark statically and the generated client passes ``idempotent=True`` to the
`Pipe` for that method. `RetryPolicy` (``Pipe(retry=...)``) says how often and how
far apart such a call is retried; `RetryBudget` is gRPC's retry throttling (proposal
A6), one per `Pipe`, so that a server in trouble is not sent a storm of retries.

No sockets, no threads, no clock: `Pipe` (pipe.py) decides which failures may be
retried, asks the policy how long to wait and the budget whether to retry at all,
and does the waiting itself, never past the call's deadline. What is retried:

- a call that fails with UNAVAILABLE (the connection was lost or refused, the server
  went away, or a handler raised `UnavailableError`), if its method is idempotent:
  up to `max_attempts` attempts in all, `backoff(n)` apart, while the budget allows;
- any call, idempotent or not, that the server provably never saw (GOAWAY named an
  older last stream, or the connection was found dead before the CALL was written):
  resent once at once, as before retries existed;
- a stream, only while it is being opened (connecting, or refused unseen): once its
  CALL is written, a failure arrives on the stream and is not retried (gRPC commits a
  stream at its first response; here the caller may already hold items).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

IDEMPOTENT_ATTRIBUTE = "__gopherpipe_idempotent__"


def idempotent(method: _F) -> _F:
    """Mark a contract method as idempotent: running it twice does what running it once does.

    Use it next to ``@abstractmethod``, in either order. The generated client then
    retries the method's calls that fail with UNAVAILABLE (see `RetryPolicy`); calls
    of unmarked methods are never resent once the server may have seen them. The
    function itself is returned unchanged, only marked.
    """
    setattr(method, IDEMPOTENT_ATTRIBUTE, True)
    return method


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a `Pipe` retries idempotent calls (``Pipe(retry=RetryPolicy(...))``).

    The defaults are gRPC's usual service-config values, with a shorter first wait.
    """

    max_attempts: int = 5
    """Attempts in all, the first included (gRPC caps its own at 5)."""
    initial_backoff: float = 0.05
    """Seconds: the wait before the first retry is uniform in [0, initial_backoff]."""
    max_backoff: float = 1.0
    """Seconds: no wait is drawn from a range wider than this."""
    multiplier: float = 2.0
    """Each retry's range is this many times the previous one's (up to max_backoff)."""
    max_tokens: float = 10.0
    """The retry budget (gRPC's retry throttling, per Pipe): every attempt that fails
    with UNAVAILABLE costs a token, every call that succeeds (a stream: once open)
    earns `token_ratio`; retries go only while more than half of `max_tokens` are left."""
    token_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError(
                "backoffs must satisfy 0 < initial_backoff <= max_backoff, not "
                f"{self.initial_backoff!r} and {self.max_backoff!r}"
            )
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier!r}")
        if self.max_tokens <= 0 or not 0 < self.token_ratio <= self.max_tokens:
            raise ValueError(
                "the budget needs max_tokens > 0 and 0 < token_ratio <= max_tokens, not "
                f"{self.max_tokens!r} and {self.token_ratio!r}"
            )

    def backoff(self, retry: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (1 for the second attempt).

        Full jitter, as gRPC: uniform in [0, min(max_backoff, initial_backoff *
        multiplier ** (retry - 1))], so that clients failed by one event do not come
        back at one moment. `draw` returns a float in [0, 1).
        """
        ceiling = self.initial_backoff * self.multiplier ** (retry - 1)
        return draw() * min(self.max_backoff, ceiling)


class RetryBudget:
    """gRPC's retry throttling: a token bucket shared by every call of one `Pipe`.

    It starts full. Counted in thousandths of a token, as gRPC does, so that ten
    successes at 0.1 make exactly one token. Updated without a lock: two threads
    racing may lose one update, which a heuristic can afford, and a successful call
    (the fast path) pays one comparison while the bucket is full.
    """

    __slots__ = ("_ratio", "_threshold", "max_tokens", "tokens")

    def __init__(self, max_tokens: float, token_ratio: float) -> None:
        self.max_tokens = round(max_tokens * 1000)
        """Thousandths of a token; `tokens` never exceeds it."""
        self.tokens = self.max_tokens
        self._ratio = round(token_ratio * 1000)
        self._threshold = self.max_tokens // 2

    def succeeded(self) -> None:
        """A call succeeded: earn `token_ratio` (callers skip this while the bucket is full)."""
        tokens = self.tokens + self._ratio
        self.tokens = tokens if tokens < self.max_tokens else self.max_tokens

    def failed(self) -> None:
        """An attempt failed with UNAVAILABLE: spend a token."""
        tokens = self.tokens - 1000
        self.tokens = tokens if tokens > 0 else 0

    @property
    def allows_retry(self) -> bool:
        """More than half of the tokens are left."""
        return self.tokens > self._threshold


NO_BUDGET = RetryBudget(0, 0)
"""The budget of a Pipe that never retries: empty, so a success never updates it."""

__all__ = ["RetryBudget", "RetryPolicy", "idempotent"]
