"""The SMTP adapter against a real aiosmtpd server on loopback: TLS, AUTH, reuse, refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outreach.channels import email_channel
from outreach.channels.base import EmailBatch, EmailRecipient, Outcome
from outreach.channels.errors import ChannelConfigError
from outreach.channels.smtp import SmtpEmailChannel, SmtpServer, parse_smtp_url
from outreach.exceptions import ConfigurationError
from tests.fixtures.app import build_app

USER, PASSWORD = "me@example.org", "p@ss:w/rd"
CREDENTIALS = "me%40example.org:p%40ss%3Aw%2Frd"


class Recorder:
    """An aiosmtpd handler that parses what it receives and misbehaves on request."""

    def __init__(self, max_per_connection: int | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.max_per_connection = max_per_connection
        self.mechanisms: list[str] = []
        self._per_peer: dict[Any, int] = {}

    @property
    def connections(self) -> int:
        """Distinct TCP connections that delivered at least one message."""
        return len({m["peer"] for m in self.received})

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        """Accept USER/PASSWORD only."""
        self.mechanisms.append(mechanism)
        ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends 535

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.max_per_connection is not None and (
                self._per_peer.get(session.peer, 0) >= self.max_per_connection):
            server.transport.close()  # hang up, as servers with a per-connection limit do
            return "421 4.7.0 Too many messages on this connection"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("unknown"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.startswith("busy"):
            return "450 4.2.1 Mailbox busy, try later"
        if address.startswith("policy"):
            return "550 5.7.1 Message rejected by policy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        if rcpt.startswith("drop"):
            server.transport.close()  # the connection dies before the final reply
            return "250 OK"
        if rcpt.startswith("slow"):
            await asyncio.sleep(1.5)
        self._per_peer[session.peer] = self._per_peer.get(session.peer, 0) + 1
        self.received.append({
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "peer": session.peer,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "message": email.message_from_bytes(envelope.original_content or envelope.content,
                                                policy=policy.default)})
        return "250 2.0.0 Queued"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with cryptography."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The server side of TLS with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def free_port() -> int:
    """A port nothing listens on (aiosmtpd's Controller needs one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_server() -> Iterator[Callable[..., tuple[Recorder, int]]]:
    """Start aiosmtpd servers on loopback with the given SMTP options; stop them afterwards."""
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **options: Any) -> tuple[Recorder, int]:
        handler = handler or Recorder()
        if options.get("authenticator") is True:
            options["authenticator"] = handler.authenticate
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        controllers.append(controller)
        return handler, controller.port

    yield start
    for controller in controllers:
        controller.stop()


def batch(*emails: str, **overrides: Any) -> EmailBatch:
    """A blast-like batch for these addresses, with unicode and unsubscribe headers."""
    recipients = [EmailRecipient(
        email=address, name=f"Zoë {i}" if i == 0 else "",
        substitutions={"-first_name-": f"Zoë{i}", "-token-": f"tok{i}"},
        headers={"List-Unsubscribe": f"<https://outreach.example.org/u/tok{i}-"
                                     + "a" * 80 + ">"})
        for i, address in enumerate(emails)]
    fields: dict[str, Any] = dict(
        from_email="team@example.org", from_name="L'Équipe", subject="Bonjour -first_name- ✓",
        html="<p>Chère -first_name-, <a href='https://o.test/c/-token-'>agir</a></p>",
        text="Chère -first_name-, https://o.test/c/-token-", recipients=recipients,
        reply_to="replies@example.org",
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "To": "ignored"})
    fields.update(overrides)
    return EmailBatch(**fields)


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://127.0.0.1:2525", SmtpServer("127.0.0.1", 2525)),
    ("smtp://mail.example.org", SmtpServer("mail.example.org", 25)),
    (f"smtp://{CREDENTIALS}@mail.example.org", SmtpServer(
        "mail.example.org", 587, username=USER, password=PASSWORD)),
    ("smtps://u:p@Mail.Example.org?verify=false", SmtpServer(
        "mail.example.org", 465, implicit_tls=True, username="u", password="p", verify=False)),
    ("smtp://h:587?starttls=required&helo=me.example.org", SmtpServer(
        "h", 587, starttls="required", helo="me.example.org")),
])
def test_smtp_url_forms(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected
    assert PASSWORD not in repr(parse_smtp_url(url))


@pytest.mark.parametrize("url", ["http://h", "smtp://", "smtp://h:99999", "smtp://h?starttls=x"])
def test_bad_smtp_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_smtp_url(url)


def test_each_recipient_gets_a_personalized_message_over_one_connection(start_server) -> None:
    handler, port = start_server()
    emails = [f"user{i}@example.org" for i in range(5)]
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=5).send_batch(batch(*emails))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 5
    assert handler.connections == 1 and [m["to"] for m in handler.received] == [
        [e] for e in emails]
    first = handler.received[0]
    msg = first["message"]
    assert first["from"] == "team@example.org" and not first["tls"]
    assert msg["Subject"] == "Bonjour Zoë0 ✓"
    assert str(msg["From"]) == "L'Équipe <team@example.org>"
    assert str(msg["To"]) == "Zoë 0 <user0@example.org>"
    assert str(handler.received[1]["message"]["To"]) == "user1@example.org"
    assert str(msg["Reply-To"]) == "replies@example.org" and msg["Date"]
    assert msg["Message-ID"] == results[0].provider_id
    assert msg["Message-ID"].endswith("@example.org>")
    assert len({r.provider_id for r in results}) == 5
    assert msg["List-Unsubscribe"] == "<https://outreach.example.org/u/tok0-" + "a" * 80 + ">"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_all("To") == ["Zoë 0 <user0@example.org>"]  # batch "To" header ignored
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Chère Zoë0, https://o.test/c/tok0"
    assert "href='https://o.test/c/tok0'" in msg.get_body(("html",)).get_content()


def test_text_only_messages_are_single_part(start_server) -> None:
    handler, port = start_server()
    SmtpEmailChannel(f"smtp://127.0.0.1:{port}").send_batch(batch("a@example.org", html=""))
    msg = handler.received[0]["message"]
    assert msg.get_content_type() == "text/plain" and "Zoë0" in msg.get_content()


@pytest.mark.parametrize("exclude", [["LOGIN"], ["PLAIN"]])
def test_starttls_and_auth(start_server, server_tls, exclude) -> None:
    handler, port = start_server(tls_context=server_tls, require_starttls=True,
                                 authenticator=True, auth_required=True,
                                 auth_exclude_mechanism=exclude)
    url = f"smtp://{CREDENTIALS}@127.0.0.1:{port}?verify=false"
    results = SmtpEmailChannel(url, timeout=5).send_batch(batch("a@example.org",
                                                                "b@example.org"))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 2
    assert all(m["tls"] and m["authenticated"] for m in handler.received)
    assert handler.mechanisms == [{"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[exclude[0]]]
    assert handler.connections == 1


def test_wrong_password_is_a_configuration_error(start_server, server_tls) -> None:
    handler, port = start_server(tls_context=server_tls, authenticator=True,
                                 auth_required=True)
    url = f"smtp://me:wrong-secret@127.0.0.1:{port}?verify=false"
    with pytest.raises(ChannelConfigError) as exc:
        SmtpEmailChannel(url, timeout=5).send_batch(batch("a@example.org"))
    assert "wrong-secret" not in str(exc.value) and handler.received == []


def test_a_self_signed_certificate_is_refused_unless_verify_false(start_server,
                                                                  server_tls) -> None:
    _, port = start_server(tls_context=server_tls)
    with pytest.raises(ChannelConfigError, match="TLS"):
        SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=5).send_batch(
            batch("a@example.org"))


def test_starttls_required_and_never(start_server, server_tls) -> None:
    _, plain = start_server()
    with pytest.raises(ChannelConfigError, match="STARTTLS"):
        SmtpEmailChannel(f"smtp://127.0.0.1:{plain}?starttls=required").send_batch(
            batch("a@example.org"))
    handler, tls_only = start_server(tls_context=server_tls, require_starttls=True)
    with pytest.raises(ChannelConfigError, match="refused the sender"):
        SmtpEmailChannel(f"smtp://127.0.0.1:{tls_only}?starttls=never").send_batch(
            batch("a@example.org"))
    assert handler.received == []


def test_implicit_tls(start_server, server_tls) -> None:
    # aiosmtpd only counts STARTTLS as TLS for AUTH; this whole connection is TLS.
    handler, port = start_server(ssl_context=server_tls, authenticator=True,
                                 auth_require_tls=False)
    url = f"smtps://{CREDENTIALS}@127.0.0.1:{port}?verify=false"
    results = SmtpEmailChannel(url, timeout=5).send_batch(batch("a@example.org"))
    assert results[0].outcome is Outcome.ACCEPTED
    assert handler.received[0]["tls"] and handler.received[0]["authenticated"]


def test_refused_recipients(start_server) -> None:
    handler, port = start_server()
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}").send_batch(batch(
        "unknown@example.org", "busy@example.org", "policy@example.org", "ok@example.org"))
    assert [(r.outcome, r.suppress, r.error_code) for r in results] == [
        (Outcome.REJECTED, "invalid", "550"), (Outcome.RETRY, None, "450"),
        (Outcome.REJECTED, None, "550"), (Outcome.ACCEPTED, None, None)]
    assert "User unknown" in results[0].error
    assert [m["to"] for m in handler.received] == [["ok@example.org"]]


def test_a_disconnect_mid_data_is_unknown_and_the_batch_goes_on(start_server) -> None:
    handler, port = start_server()
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=5).send_batch(batch(
        "a@example.org", "drop@example.org", "b@example.org"))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.UNKNOWN, Outcome.ACCEPTED]
    assert handler.connections == 2


def test_a_timeout_awaiting_the_data_reply_is_unknown(start_server) -> None:
    handler, port = start_server()
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=0.5).send_batch(batch(
        "slow@example.org", "b@example.org"))
    assert [r.outcome for r in results] == [Outcome.UNKNOWN, Outcome.ACCEPTED]


def test_a_server_that_hangs_up_between_messages_gets_a_new_connection(start_server) -> None:
    handler, port = start_server(Recorder(max_per_connection=2))
    emails = [f"user{i}@example.org" for i in range(5)]
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=5).send_batch(batch(*emails))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 5
    assert handler.connections == 3 and len(handler.received) == 5


def test_a_server_that_accepts_nothing_after_reconnecting_stops_the_batch(start_server) -> None:
    handler, port = start_server(Recorder(max_per_connection=0))
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}", timeout=5).send_batch(batch(
        "a@example.org", "b@example.org", "c@example.org"))
    assert [r.outcome for r in results] == [Outcome.RETRY] * 3 and handler.received == []


def test_connection_refused_leaves_everything_to_retry() -> None:
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{free_port()}", timeout=2).send_batch(
        batch("a@example.org", "b@example.org"))
    assert [r.outcome for r in results] == [Outcome.RETRY] * 2
    assert "cannot connect" in results[0].error


def test_an_unusable_address_is_rejected_without_a_round_trip(start_server) -> None:
    handler, port = start_server()
    results = SmtpEmailChannel(f"smtp://127.0.0.1:{port}").send_batch(batch(
        "not an address", "ok@example.org"))
    assert (results[0].outcome, results[0].suppress) == (Outcome.REJECTED, "invalid")
    assert results[1].outcome is Outcome.ACCEPTED and len(handler.received) == 1


def test_the_factory_builds_the_adapter_from_smtp_url(start_server, database_url, redis_url,
                                                     tmp_path) -> None:
    handler, port = start_server()
    app = build_app(database_url, redis_url, tmp_path / "a", EMAIL_BACKEND="smtp",
                    SMTP_URL=f"smtp://127.0.0.1:{port}")
    channel = email_channel(app)
    assert isinstance(channel, SmtpEmailChannel)
    assert channel.send_batch(batch("a@example.org"))[0].outcome is Outcome.ACCEPTED
    bare = build_app(database_url, redis_url, tmp_path / "b", EMAIL_BACKEND="smtp")
    with pytest.raises(ConfigurationError, match="SMTP_URL"):
        email_channel(bare)
