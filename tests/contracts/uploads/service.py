"""File uploads and downloads, streamed in chunks."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gopherpipe_runtime import Chan

CHUNK_SIZE = 64 * 1024
OCTET_STREAM = "application/octet-stream"


@dataclass
class StoredFile:
    file_id: UUID
    name: str
    size: int
    sha256: bytes
    content_type: str = OCTET_STREAM
    uploaded_at: datetime | None = None


class FileStore(ABC):
    """Stores blobs; large ones travel as a stream of chunks."""

    @abstractmethod
    def upload(
        self, name: str, chunks: Chan[bytes], content_type: str = OCTET_STREAM
    ) -> StoredFile: ...

    @abstractmethod
    def download(self, file_id: UUID, chunk_size: int = CHUNK_SIZE) -> Chan[bytes]: ...

    @abstractmethod
    def stat(self, file_id: UUID) -> StoredFile | None: ...

    @abstractmethod
    def delete(self, file_ids: list[UUID]) -> list[UUID]: ...
