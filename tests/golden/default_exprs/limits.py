"""Constants beside the contract, imported by it."""

from typing import Final

CHUNK_SIZE: Final = 64 * 1024
MAX_CHUNKS = CHUNK_SIZE // 1024
