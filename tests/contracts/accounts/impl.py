"""An in-memory Accounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from gopherpipe_runtime import NotFoundError

from .service import Accounts, DeactivationReason, Profile, Role, User

SIGNED_UP_AT = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


class AccountsImpl(Accounts):
    def __init__(self) -> None:
        self.users: dict[uuid.UUID, User] = {}
        self.reasons: dict[uuid.UUID, str] = {}

    def sign_up(self, email: str, display_name: str, role: Role = Role.MEMBER) -> User:
        user_id = uuid.uuid5(uuid.NAMESPACE_URL, "mailto:" + email)
        user = User(user_id, email, Profile(display_name), role, SIGNED_UP_AT, frozenset({"new"}))
        self.users[user_id] = user
        return user

    def get_user(self, user_id: uuid.UUID) -> User | None:
        return self.users.get(user_id)

    def find_by_email(self, emails: list[str]) -> dict[str, uuid.UUID]:
        by_email = {user.email: user.id for user in self.users.values()}
        return {email: by_email[email] for email in emails if email in by_email}

    def _user(self, user_id: uuid.UUID) -> User:
        if user_id not in self.users:
            raise NotFoundError(f"no user {user_id}")
        return self.users[user_id]

    def update_profile(self, user_id: uuid.UUID, profile: Profile) -> User:
        self._user(user_id).profile = profile
        return self._user(user_id)

    def set_roles(self, changes: dict[uuid.UUID, Role]) -> int:
        for user_id, role in changes.items():
            self._user(user_id).role = role
        return len(changes)

    def deactivate(self, user_id: uuid.UUID, reason: DeactivationReason = "requested") -> bool:
        user = self._user(user_id)
        was_active, user.active = user.active, False
        self.reasons[user_id] = reason
        return was_active

    def list_users(self, role: Role | None = None, limit: int = 50) -> list[User]:
        users = [u for u in self.users.values() if role is None or u.role == role]
        return sorted(users, key=lambda u: u.email)[:limit]
