"""Flow-control windows: what each side announces in HELLO that it buffers for the other.

Items per stream, bytes per stream and bytes across a connection's streams, with their
defaults and the largest values the wire allows (RFC section 5). How a sender and a
receiver keep within them is flow.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_STREAM_WINDOW = 1024
DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024
DEFAULT_CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024
MAX_WINDOW_ITEMS = 1 << 20
MAX_WINDOW_BYTES = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Windows:
    """What one side buffers for the other, announced in HELLO."""

    items: int = DEFAULT_STREAM_WINDOW
    """Items per stream."""
    stream_bytes: int = DEFAULT_STREAM_WINDOW_BYTES
    """MESSAGE payload bytes per stream."""
    connection_bytes: int = DEFAULT_CONNECTION_WINDOW_BYTES
    """MESSAGE payload bytes across a connection's streams."""

    def __post_init__(self) -> None:
        if not 1 <= self.items <= MAX_WINDOW_ITEMS:
            raise ValueError(f"stream_window must be in 1..{MAX_WINDOW_ITEMS}")
        for name, value in (
            ("stream_window_bytes", self.stream_bytes),
            ("connection_window_bytes", self.connection_bytes),
        ):
            if not 1 <= value <= MAX_WINDOW_BYTES:
                raise ValueError(f"{name} must be in 1..{MAX_WINDOW_BYTES}")


DEFAULT_WINDOWS = Windows()
