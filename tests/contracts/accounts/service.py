"""User accounts: sign-up, lookup, roles."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, auto
from typing import Literal, Optional


class Role(Enum):
    VIEWER = auto()
    MEMBER = auto()
    ADMIN = auto()


@dataclass
class Profile:
    display_name: str
    bio: str = ""
    avatar: bytes | None = None


@dataclass
class User:
    id: uuid.UUID
    email: str
    profile: Profile
    role: Role = Role.MEMBER
    created_at: Optional[datetime] = None
    tags: frozenset[str] = field(default_factory=frozenset)
    active: bool = True


DeactivationReason = Literal["requested", "spam", "inactive"]


class Accounts(ABC):
    """Who can log in, and as what."""

    @abstractmethod
    def sign_up(self, email: str, display_name: str, role: Role = Role.MEMBER) -> User: ...

    @abstractmethod
    def get_user(self, user_id: uuid.UUID) -> Optional[User]: ...

    @abstractmethod
    def find_by_email(self, emails: list[str]) -> dict[str, uuid.UUID]: ...

    @abstractmethod
    def update_profile(self, user_id: uuid.UUID, profile: Profile) -> User: ...

    @abstractmethod
    def set_roles(self, changes: dict[uuid.UUID, Role]) -> int: ...

    @abstractmethod
    def deactivate(self, user_id: uuid.UUID, reason: DeactivationReason = "requested") -> bool: ...

    @abstractmethod
    def list_users(self, role: Role | None = None, limit: int = 50) -> list[User]: ...
