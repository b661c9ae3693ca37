"""End-to-end retries contract: idempotent and non-idempotent twins, and a flaky method."""

from abc import ABC, abstractmethod

from gopherpipe_runtime import Chan, idempotent


class Retries(ABC):
    @idempotent
    @abstractmethod
    def get(self, key: str, hold: str) -> str:
        """Idempotent. Counts the call (`seen`); with `hold`, creates the file
        `<hold>.<server pid>` and waits while the file `hold` exists. Returns
        "<key>@<server pid>"."""

    @abstractmethod
    def put(self, key: str, hold: str) -> str:
        """`get`'s twin, not idempotent."""

    @idempotent
    @abstractmethod
    def flaky(self, key: str, failures: int) -> int:
        """Raises UnavailableError on the first `failures` calls for `key`, then
        returns how many calls for `key` there were."""

    @idempotent
    @abstractmethod
    def seen(self, key: str) -> int:
        """How many calls for `key` (get, put, flaky, numbers) this server process had."""

    @idempotent
    @abstractmethod
    def numbers(self, key: str, count: int) -> Chan[int]:
        """Server stream: 0 .. count - 1, counted for `key`."""
