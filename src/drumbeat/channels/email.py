"""The email channel: SMTP through smtplib, one connection kept across messages and batches.

Connection: `DRUMBEAT_SMTP_HOST:PORT` with a timeout; STARTTLS (certificate and host name
verified) when `smtp_starttls`, then login when `smtp_username` is set. A connection the
server dropped while idle is reopened once, transparently; a failure to connect makes the
rest of the batch RETRY without waiting on the server again for every message.

Each email's `Message-ID` is the outbox key (`<key@drumbeat>`, the key made header-safe),
so a message sent twice (a crash between send and record) is recognisable as one, and
one-click unsubscribe headers (RFC 8058) pointing at `{public_url}/unsubscribe/{token}`.

Outcomes: no address or an address that cannot be written in a header → FAILED; a 4xx
reply, a disconnect, a timeout or a failure to connect or log in → RETRY; a 5xx reply →
FAILED with the server's reply. provider_id is the Message-ID.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
import threading
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from html.parser import HTMLParser
from typing import TYPE_CHECKING, ClassVar

from drumbeat.channels.base import Message, Result, header_key
from drumbeat.channels.keys import SigningKeys
from drumbeat.channels.tokens import unsubscribe_token

if TYPE_CHECKING:
    from drumbeat.config import Settings
    from drumbeat.store.base import Store


MAX_MESSAGE_ID = 900  # a header line holds 998 characters, and a msg-id is never folded


def message_id_header(message_id: str) -> str:
    """`<key@drumbeat>` with the outbox key made header-safe (`header_key`); a key that would
    not fit one header line is hashed instead."""
    key = header_key(message_id)
    if len(key) > MAX_MESSAGE_ID:
        key = hashlib.sha256(message_id.encode()).hexdigest()
    return f"<{key}@drumbeat>"


class _TextOf(HTMLParser):
    """Readable plain text of an HTML body: blocks on their own lines, links as `text (url)`."""

    PARAGRAPHS = frozenset(
        {"p", "ul", "ol", "table", "blockquote", "pre", "hr", "section", "header", "footer"}
        | {"h1", "h2", "h3", "h4", "h5", "h6"}
    )
    LINES = frozenset({"br", "div", "li", "tr"})
    SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[str | None] = []

    def _break(self, tag: str) -> None:
        if tag in self.PARAGRAPHS:
            self.parts.append("\n\n")
        elif tag in self.LINES and not (self.parts and self.parts[-1].endswith("\n")):
            self.parts.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        self._break(tag)
        if tag == "li":
            self.parts.append("- ")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith(("#", "mailto:")):
                self.parts.append(f" ({href})")
        elif tag != "br":
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"SMTP {code}: {text}".strip()


class _Broken(Exception):
    """The connection cannot be (re)made: the rest of the batch is RETRY."""


class EmailChannel:
    name: ClassVar[str] = "email"

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        if not settings.smtp_host:
            raise ValueError("the email channel needs DRUMBEAT_SMTP_HOST")
        self.settings = settings
        self.keys = SigningKeys(settings, store)
        self.unsubscribe_base = settings.public_url.rstrip("/") + "/unsubscribe/"
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()
        self.connections = 0  # how many SMTP sessions were opened (observable in tests)

    # ---- building -----------------------------------------------------------------------

    def build(self, message: Message) -> EmailMessage:
        """The email for `message`; ValueError when a header cannot hold a value."""
        email = EmailMessage()
        email["From"] = self.settings.email_from
        email["To"] = message.email or ""
        email["Subject"] = " ".join(message.subject.split())  # no line breaks in a header
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = message_id_header(message.message_id)
        token = unsubscribe_token(self.keys(message.workspace), message.workspace, message.user_id)
        email["List-Unsubscribe"] = f"<{self.unsubscribe_base}{token}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if message.html:
            email.set_content(html_to_text(message.body))
            email.add_alternative(message.body, subtype="html")
        else:
            email.set_content(message.body)
        return email

    # ---- connection ---------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        assert settings.smtp_host is not None
        smtp: smtplib.SMTP | None = None
        try:  # the host given to the constructor is the name STARTTLS verifies
            smtp = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                smtp.close()
            where = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
            if isinstance(exc, smtplib.SMTPResponseException):
                raise _Broken(f"{where}: {_reply(exc.smtp_code, exc.smtp_error)}") from exc
            raise _Broken(f"{where}: {type(exc).__name__}: {exc}") from exc
        self.connections += 1
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    # ---- sending ------------------------------------------------------------------------

    def _deliver(self, email: EmailMessage, to: str) -> Result:
        """Send one email; raises _Broken when no connection can be had."""
        provider_id = str(email["Message-ID"])
        for attempt in range(2):
            reused = self._smtp is not None
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                self._smtp.send_message(email, to_addrs=[to])
                return Result.sent(provider_id)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(to, (550, b"recipient refused"))
                return self._refused(code, text)
            except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
                return self._refused(exc.smtp_code, exc.smtp_error)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if reused and attempt == 0:
                    continue  # dropped while idle: open a new connection, once
                raise _Broken(f"SMTP server disconnected: {exc}") from exc
            except smtplib.SMTPNotSupportedError as exc:  # e.g. SMTPUTF8 address, no support
                return Result.failed(f"SMTP: {exc}")
            except smtplib.SMTPException as exc:  # anything else: state unknown, start afresh
                self._drop()
                return Result.retry(f"SMTP: {type(exc).__name__}: {exc}")
            except OSError as exc:  # timeouts and resets outside smtplib's own handling
                self._drop()
                raise _Broken(f"SMTP: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _refused(self, code: int, text: bytes | str) -> Result:
        if code == 421:  # the server is closing this connection
            self._drop()
        if 500 <= code < 600:
            return Result.failed(_reply(code, text))
        return Result.retry(_reply(code, text))  # 4xx, or no proper code: transient

    def send_batch(self, messages: Sequence[Message]) -> list[Result]:
        results: list[Result] = []
        broken: str | None = None
        with self._lock:
            for message in messages:
                if not message.email:
                    results.append(Result.failed("user has no email"))
                    continue
                if broken is not None:
                    results.append(Result.retry(broken))
                    continue
                try:
                    email = self.build(message)
                except (ValueError, TypeError) as exc:
                    results.append(Result.failed(f"cannot build the email: {exc}"))
                    continue
                try:
                    results.append(self._deliver(email, message.email))
                except _Broken as exc:
                    broken = str(exc)
                    results.append(Result.retry(broken))
        return results

    def close(self) -> None:
        with self._lock:
            if self._smtp is None:
                return
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self._drop()
