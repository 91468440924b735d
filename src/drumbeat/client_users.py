"""`Drumbeat`'s look at users: one user with their campaigns and messages, their erasure
and suppressed addresses, their in-app inbox, the links and tokens made for them, and
audiences (how many users and which would match a rule now)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from drumbeat.client_state import ClientState
from drumbeat.errors import InvalidInput, Problem
from drumbeat.ingest.validate import NUL
from drumbeat.inputs import interval
from drumbeat.model.user import User
from drumbeat.views import Membership, UserDetail, message_of


def load_rule(source: Any) -> Any:
    """A rule from a parsed document, a Rule, or a YAML/JSON file path."""
    from drumbeat.model.rules import RuleNode, parse_rule

    if isinstance(source, RuleNode):
        return source
    if isinstance(source, str | Path):
        from drumbeat.model.documents import load_document

        return parse_rule(load_document(Path(source)))
    return parse_rule(source)


class UserAccess(ClientState):
    def users(self, user_ids: Iterable[str]) -> dict[str, User]:
        return self.store.load_users(self.ws, list(user_ids))

    def inbox(
        self, user_id: str, *, unread_only: bool = False, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The user's in-app messages, newest first (what a client app would fetch)."""
        from drumbeat.channels.in_app import inbox_messages

        return inbox_messages(self.store, self.ws, user_id, unread_only=unread_only, limit=limit)

    def mark_read(self, user_id: str, message_ids: list[int]) -> int:
        from drumbeat.channels.in_app import mark_read

        return mark_read(self.store, self.ws, user_id, message_ids, self.clock())

    def audience_count(self, rule: Any) -> int:
        return self.store.count_audience(self.ws, load_rule(rule), self.clock())

    def audience_sample(self, rule: Any, n: int = 10) -> list[User]:
        ids = self.store.select_audience(self.ws, load_rule(rule), self.clock(), limit=n)
        found = self.users(ids)
        return [found[user_id] for user_id in ids if user_id in found]

    def user(self, user_id: str, *, messages: int = 20) -> UserDetail | None:
        """The user's fields, attributes, campaigns and `messages` latest messages; None if
        the workspace has no such user."""
        user = self.users([user_id]).get(user_id)
        if user is None:
            return None
        memberships = [
            Membership(
                user_id,
                m["state"],
                m["position"],
                m["entry_count"],
                m["entered_at"],
                m["exited_at"],
                m["exit_reason"],
                m["campaign_key"],
            )
            for m in self.store.user_memberships(self.ws, user_id)
        ]
        latest = self.store.recent_messages(self.ws, user_id, messages)
        return UserDetail(
            user.user_id,
            user.email,
            user.timezone,
            user.unsubscribed,
            user.created_at,
            user.last_seen_at,
            dict(user.attributes),
            memberships,
            [message_of(r) for r in latest],
        )

    def erase_user(self, user_id: str) -> bool:
        """Delete the user with their events, memberships, messages and inbox, keeping only
        the sha256 of their address so it is never mailed again; False if there was none."""
        return self.store.erase_user(self.ws, user_id, self.clock())

    def suppress(self, addresses: Iterable[str], reason: str) -> int:
        """Never mail these addresses again (`reason`: erased, bounce or complaint); how
        many were not suppressed already. Only their sha256 is kept."""
        from drumbeat.store.erasure import REASONS

        if reason not in REASONS:
            raise InvalidInput(f"reason {reason!r}: use one of {', '.join(REASONS)}")
        return self.store.suppress(self.ws, addresses, reason, self.clock())

    def unsubscribe_user(self, token: str) -> str:
        """The user an unsubscribe link's token names (what a web app serving
        `{public_url}/unsubscribe/{token}` calls); InvalidToken unless it was signed with
        this workspace's key for this workspace."""
        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import InvalidToken, verify_unsubscribe_token

        key = SigningKeys(self.config, self.store)(self.config.workspace)
        workspace, user_id = verify_unsubscribe_token(key, token)
        if workspace != self.config.workspace:  # a key set for several workspaces
            raise InvalidToken(f"unsubscribe token of workspace {workspace!r}")
        return user_id

    def unsubscribe_url(self, user_id: str) -> str:
        """The user's unsubscribe link, as emails carry it: `{public_url}/unsubscribe/{token}`
        (for a "manage emails" page of the product, say)."""
        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import unsubscribe_token

        key = SigningKeys(self.config, self.store)(self.config.workspace)
        token = unsubscribe_token(key, self.config.workspace, user_id)
        return f"{self.config.public_url.rstrip('/')}/unsubscribe/{token}"

    def inbox_token(self, user_id: str, ttl: str | float = "1d") -> str:
        """A token that opens `user_id`'s inbox over the HTTP API (`Authorization: Bearer …`
        on `/v1/inbox/{user_id}`) for `ttl` (`1d`, `12h` or seconds) of real time. Mint it in
        the product's backend for the signed-in user and hand it to their browser."""
        import time

        from drumbeat.channels.keys import SigningKeys
        from drumbeat.channels.tokens import inbox_token

        if not user_id or NUL in user_id:
            raise InvalidInput(Problem("user_id", "a non-empty id without NUL characters"))
        expires = int(time.time() + interval(ttl, "ttl"))
        key = SigningKeys(self.config, self.store)(self.config.workspace)
        return inbox_token(key, self.config.workspace, user_id, expires)
