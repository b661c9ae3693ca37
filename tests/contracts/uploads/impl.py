"""FileStore keeping files in memory."""

import hashlib
import uuid
from datetime import datetime

from gopherpipe_runtime import Chan, NotFoundError

from .service import CHUNK_SIZE, OCTET_STREAM, FileStore, StoredFile


class FileStoreImpl(FileStore):
    def __init__(self) -> None:
        self.files: dict[uuid.UUID, tuple[StoredFile, bytes]] = {}

    def upload(
        self, name: str, chunks: Chan[bytes], content_type: str = OCTET_STREAM
    ) -> StoredFile:
        data = b"".join(chunks)
        file_id = uuid.uuid5(uuid.NAMESPACE_OID, name)
        stored = StoredFile(
            file_id,
            name,
            len(data),
            hashlib.sha256(data).digest(),
            content_type,
            datetime(2024, 6, 1, 12, 0, 0, 123456),
        )
        self.files[file_id] = (stored, data)
        return stored

    def download(self, file_id: uuid.UUID, chunk_size: int = CHUNK_SIZE) -> Chan[bytes]:
        if file_id not in self.files:
            raise NotFoundError(f"no file {file_id}")
        data = self.files[file_id][1]
        pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        out: Chan[bytes] = Chan(len(pieces))
        for piece in pieces:
            out.send(piece)
        out.close()
        return out

    def stat(self, file_id: uuid.UUID) -> StoredFile | None:
        found = self.files.get(file_id)
        return None if found is None else found[0]

    def delete(self, file_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        return [f for f in file_ids if self.files.pop(f, None) is not None]
