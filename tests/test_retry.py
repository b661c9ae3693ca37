"""The retry policy, the retry budget and the `idempotent` marker, without sockets."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytest

from gopherpipe_runtime import Pipe, RetryPolicy, idempotent
from gopherpipe_runtime.retry import RetryBudget


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    # The largest draw gives the ceiling: 0.1, 0.2, 0.4, 0.8, then capped at 1.0.
    ceilings = [policy.backoff(n, draw=lambda: 1.0) for n in range(1, 7)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.backoff(3, draw=lambda: 0.0) == 0.0
    assert policy.backoff(3, draw=lambda: 0.5) == pytest.approx(0.2)
    for n in range(1, 10):  # the real draw stays in range
        assert 0.0 <= policy.backoff(n) <= min(1.0, 0.1 * 2 ** (n - 1))


def test_policy_defaults_and_validation() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff) == (5, 0.05, 1.0)
    assert (policy.multiplier, policy.max_tokens, policy.token_ratio) == (2.0, 10.0, 0.1)
    for bad in (
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"initial_backoff": 0},
        {"initial_backoff": 2.0, "max_backoff": 1.0},
        {"multiplier": 0.5},
        {"max_tokens": 0},
        {"token_ratio": 0},
    ):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be a RetryPolicy or None"):
        Pipe("tcp://127.0.0.1:1", retry=5)  # type: ignore[arg-type]


def test_budget_throttles_at_half_and_refills_by_the_ratio() -> None:
    budget = RetryBudget(10, 0.1)
    allowed = []
    for _ in range(7):
        budget.failed()
        allowed.append(budget.allows_retry)
    # 9, 8, 7, 6 tokens allow a retry; 5 (half) and below do not.
    assert allowed == [True, True, True, True, False, False, False]
    assert budget.tokens == 3000
    for _ in range(30):  # 3 tokens back: exactly 6, as thousandths add up exactly
        budget.succeeded()
    assert budget.tokens == 6000 and budget.allows_retry
    for _ in range(100):
        budget.succeeded()
    assert budget.tokens == budget.max_tokens == 10000  # never above the maximum
    for _ in range(20):
        budget.failed()
    assert budget.tokens == 0  # never below zero


def test_idempotent_marks_the_function_in_either_order_and_keeps_it_abstract() -> None:
    class Store(ABC):
        @idempotent
        @abstractmethod
        def get(self, key: str) -> str: ...

        @abstractmethod
        @idempotent
        def put(self, key: str) -> None: ...

        @abstractmethod
        def append(self, key: str) -> None: ...

    for name in ("get", "put"):
        method = getattr(Store, name)
        assert method.__isabstractmethod__ is True
        assert method.__gopherpipe_idempotent__ is True
        assert method.__name__ == name  # the function itself, not a wrapper
    assert not hasattr(Store.append, "__gopherpipe_idempotent__")
    assert Store.__abstractmethods__ == {"get", "put", "append"}
    with pytest.raises(TypeError):
        Store()  # type: ignore[abstract]
