"""SMTP email adapter: each recipient's personalized message over one reused connection."""

from __future__ import annotations

import email.errors
import functools
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from outreach.channels.base import EmailBatch, EmailRecipient, Outcome, SendResult, personalize
from outreach.channels.errors import ChannelConfigError

# cte_type 7bit makes non-ASCII bodies quoted-printable or base64, so any server takes them.
_BUILD = policy.SMTP.clone(cte_type="7bit")
# Generated with the RFC 5322 line limit: folding at 78 would RFC 2047-encode a long
# List-Unsubscribe URL, which mail clients then fail to read.
_WRITE = _BUILD.clone(max_line_length=998)
_OWN_HEADERS = frozenset(
    "from to cc bcc subject date message-id reply-to sender mime-version content-type "
    "content-transfer-encoding".split()
)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.\d{1,3}\b")
_USER_UNKNOWN = re.compile(r"unknown|no such|not exist|invalid|unrouteable|not found", re.I)
STARTTLS_MODES = ("auto", "required", "never")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect, parsed from SMTP_URL."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "auto"
    username: str | None = None
    password: str = ""
    verify: bool = True
    helo: str | None = None

    def __repr__(self) -> str:  # never show the password
        return (f"SmtpServer(host={self.host!r}, port={self.port}, tls="
                f"{'implicit' if self.implicit_tls else self.starttls}, user={self.username!r})")


def parse_smtp_url(url: str) -> SmtpServer:
    """Parse smtp://user:pass@host:587?starttls=required|never&verify=false or smtps://..."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ChannelConfigError("SMTP_URL must look like smtp://user:password@host:587 or "
                                 "smtps://user:password@host:465")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto")
    if starttls not in STARTTLS_MODES:
        raise ChannelConfigError(f"SMTP_URL starttls must be one of {', '.join(STARTTLS_MODES)}")
    username = unquote(parts.username) if parts.username else None
    try:
        port = parts.port
    except ValueError:
        raise ChannelConfigError("SMTP_URL has an invalid port") from None
    implicit = parts.scheme == "smtps"
    default_port = 465 if implicit else 587 if username else 25
    return SmtpServer(
        host=parts.hostname, port=port or default_port, implicit_tls=implicit,
        starttls=starttls, username=username, password=unquote(parts.password or ""),
        verify=query.get("verify", "true") not in ("false", "0", "no", "off"),
        helo=query.get("helo"),
    )


@functools.cache
def _local_hostname() -> str:
    """This host's name for EHLO, looked up once: getfqdn can take seconds with slow DNS."""
    return socket.getfqdn()


def _ascii_address(value: str) -> str:
    """The address with an IDNA domain; ValueError when the local part is not ASCII."""
    local, _, domain = value.strip().rpartition("@")
    if not local or not local.isascii():
        raise ValueError(f"{value!r} is not an ASCII email address")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


class _NotSent(Exception):
    """The connection failed before the message was handed over: safe to send again."""


class _LostInData(Exception):
    """The connection failed while the message was being sent or acknowledged."""


class _SenderRefused(Exception):
    """The server refused MAIL FROM."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(f"{code} {reply}")
        self.code = code


def _reply(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _rset(smtp: smtplib.SMTP) -> None:
    """Reset the transaction after a refusal; a dead connection shows up on the next command."""
    try:
        smtp.rset()
    except (OSError, smtplib.SMTPException):
        pass


def _refusal(code: int, reply: str, recipient: bool) -> SendResult:
    """4xx → RETRY; 5xx → REJECTED, suppressed as invalid when a recipient is unknown."""
    if not 500 <= code < 600:
        return SendResult(Outcome.RETRY, error=reply, error_code=str(code))
    suppress = None
    if recipient:
        enhanced = _ENHANCED.search(reply)
        if enhanced:  # 5.1.x: bad mailbox or domain; 5.7.x and others are policy, not the address
            suppress = "invalid" if enhanced[2] == "1" else None
        elif code in (550, 551, 553) and _USER_UNKNOWN.search(reply):
            suppress = "invalid"
    return SendResult(Outcome.REJECTED, error=reply, error_code=str(code), suppress=suppress)


class SmtpEmailChannel:
    """Email channel that sends each recipient's personalized message to an SMTP server."""

    name = "smtp"

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.server = parse_smtp_url(url)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpEmailChannel({self.server!r})"

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.server.verify:  # ?verify=false, for test servers with self-signed certs
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> smtplib.SMTP:
        """Open an authenticated connection, upgraded with STARTTLS as configured."""
        s = self.server
        helo = s.helo or _local_hostname()
        smtp: smtplib.SMTP
        if s.implicit_tls:
            smtp = smtplib.SMTP_SSL(s.host, s.port, local_hostname=helo, timeout=self.timeout,
                                    context=self._tls_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=self.timeout)
        try:
            smtp.ehlo()
            if not s.implicit_tls and s.starttls != "never":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                elif s.starttls == "required":
                    raise ChannelConfigError(f"{s.host}:{s.port} does not offer STARTTLS and "
                                             "SMTP_URL says starttls=required")
            if s.username is not None:
                smtp.login(s.username, s.password)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError) as exc:
            smtp.close()
            raise ChannelConfigError(
                f"{s.host}:{s.port} refused the SMTP_URL credentials: {exc}") from None
        except ssl.SSLError as exc:
            smtp.close()
            raise ChannelConfigError(f"TLS with {s.host}:{s.port} failed: {exc}") from None
        except BaseException:
            smtp.close()
            raise
        return smtp

    def render(self, batch: EmailBatch, recipient: EmailRecipient) -> tuple[bytes, str]:
        """One recipient's message as wire bytes, and its Message-ID."""
        subs = recipient.substitutions
        from_name, from_email = parseaddr(batch.from_email)
        sender = Address(batch.from_name or from_name, addr_spec=_ascii_address(
            from_email or batch.from_email))
        msg = EmailMessage(policy=_BUILD)
        msg["From"] = sender
        msg["To"] = Address(recipient.name, addr_spec=_ascii_address(recipient.email))
        msg["Subject"] = personalize(batch.subject, subs)
        msg["Date"] = formatdate(usegmt=True)
        message_id = make_msgid(domain=sender.domain)
        msg["Message-ID"] = message_id
        if batch.reply_to:
            msg["Reply-To"] = batch.reply_to
        for name, value in {**batch.headers, **recipient.headers}.items():
            if name.lower() not in _OWN_HEADERS:
                msg[name] = value
        text, html = personalize(batch.text, subs), personalize(batch.html, subs)
        if html and text:
            msg.set_content(text)
            msg.add_alternative(html, subtype="html")
        else:
            msg.set_content(html or text, subtype="html" if html else "plain")
        return msg.as_bytes(policy=_WRITE), message_id

    def send_batch(self, batch: EmailBatch) -> list[SendResult]:
        """Send every recipient's message over one connection; one result per recipient."""
        _, from_email = parseaddr(batch.from_email)
        envelope_from = from_email or batch.from_email
        results: list[SendResult] = []
        smtp: smtplib.SMTP | None = None
        try:
            for index, recipient in enumerate(batch.recipients):
                try:
                    data, message_id = self.render(batch, recipient)
                except (ValueError, email.errors.MessageError) as exc:
                    bad_to = "@" not in recipient.email or not recipient.email.isascii()
                    results.append(SendResult(Outcome.REJECTED, error=f"cannot build: {exc}",
                                              suppress="invalid" if bad_to else None))
                    continue
                reconnected = False
                while True:
                    try:
                        if smtp is None:
                            smtp = self.connect()
                        results.append(self._transact(smtp, envelope_from, recipient.email,
                                                      data, message_id))
                        break
                    except _NotSent as exc:
                        smtp = _discard(smtp)
                        if reconnected:  # dropped again at once: give up on the rest
                            return results + _not_sent(batch, index, str(exc))
                        reconnected = True  # e.g. a per-connection message limit: reconnect
                    except _LostInData as exc:
                        smtp = _discard(smtp)
                        results.append(SendResult(Outcome.UNKNOWN, error=str(exc)))
                        break
                    except _SenderRefused as exc:
                        if exc.code >= 500 and not _any_sent(results):
                            raise ChannelConfigError(
                                f"the SMTP server refused the sender {envelope_from}: {exc}"
                            ) from None
                        return results + _not_sent(batch, index, f"sender refused: {exc}")
                    except ChannelConfigError as exc:
                        if not _any_sent(results):
                            raise
                        return results + _not_sent(batch, index, str(exc))
                    except (OSError, smtplib.SMTPException) as exc:
                        # Connecting failed (refused, timeout, DNS, a 421 greeting).
                        smtp = _discard(smtp)
                        return results + _not_sent(batch, index, f"cannot connect: {exc!r}")
            return results
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    smtp.close()

    def _transact(self, smtp: smtplib.SMTP, sender: str, to: str, data: bytes,
                  message_id: str) -> SendResult:
        """MAIL, RCPT and DATA for one message, each failure mapped by where it happened."""
        try:
            code, reply = smtp.mail(sender)
            if code == 421:  # the server is closing the connection
                raise _NotSent(f"{code} {_reply(reply)}")
            if code != 250:
                _rset(smtp)
                raise _SenderRefused(code, _reply(reply))
            code, reply = smtp.rcpt(_ascii_address(to))
            if code == 421:
                raise _NotSent(f"{code} {_reply(reply)}")
            if code not in (250, 251):
                _rset(smtp)
                return _refusal(code, _reply(reply), recipient=True)
        except OSError as exc:  # includes SMTPServerDisconnected and timeouts
            raise _NotSent(f"connection lost before DATA: {exc!r}") from exc
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused: not sent
            _rset(smtp)
            return _refusal(exc.smtp_code, _reply(exc.smtp_error), recipient=False)
        except OSError as exc:
            # The message may be complete on the server's side: resending could deliver twice.
            raise _LostInData(f"connection lost during DATA: {exc!r}") from exc
        if code != 250:
            _rset(smtp)
            return _refusal(code, _reply(reply), recipient=False)
        return SendResult(Outcome.ACCEPTED, provider_id=message_id)


def _discard(smtp: smtplib.SMTP | None) -> smtplib.SMTP | None:
    """Close a broken connection without talking to the server; None, to forget it."""
    if smtp is not None:
        smtp.close()
    return None


def _any_sent(results: list[SendResult]) -> bool:
    return any(r.outcome in (Outcome.ACCEPTED, Outcome.UNKNOWN) for r in results)


def _not_sent(batch: EmailBatch, index: int, error: str) -> list[SendResult]:
    """RETRY for the recipient at index and every one after it: none of them was sent."""
    return [SendResult(Outcome.RETRY, error=error)] * (len(batch.recipients) - index)
