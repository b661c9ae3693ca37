"""File uploads and downloads, streamed in chunks."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gopherpipe_runtime import Chan


@dataclass
class StoredFile:
    file_id: UUID
    name: str
    size: int
    sha256: bytes
    content_type: str = "application/octet-stream"
    uploaded_at: datetime | None = None


class FileStore(ABC):
    """Stores blobs; large ones travel as a stream of chunks."""

    @abstractmethod
    def upload(
        self, name: str, chunks: Chan[bytes], content_type: str = "application/octet-stream"
    ) -> StoredFile: ...

    @abstractmethod
    def download(self, file_id: UUID, chunk_size: int = 65536) -> Chan[bytes]: ...

    @abstractmethod
    def stat(self, file_id: UUID) -> StoredFile | None: ...

    @abstractmethod
    def delete(self, file_ids: list[UUID]) -> list[UUID]: ...
