"""Run the SendGrid and Twilio emulators until Ctrl-C: python -m outreach.emulators."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from outreach.emulators.sendgrid import SendGridEmulator
from outreach.emulators.twilio import TwilioEmulator

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_SERVICE_SID = "MG" + "0123456789abcdef" * 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m outreach.emulators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--sendgrid-port", type=int, default=8025)
    parser.add_argument("--twilio-port", type=int, default=8026)
    parser.add_argument("--webhook-base", default=None,
                        help="origin of the outreach app, e.g. http://127.0.0.1:5000; webhooks "
                             "go to /webhooks/sendgrid, /webhooks/twilio/status and /inbound")
    parser.add_argument("--sendgrid-api-key", default="SG.emulator-key")
    parser.add_argument("--sendgrid-private-key", type=Path, default=None,
                        help="PEM file of the EC P-256 event-webhook signing key (else generated)")
    parser.add_argument("--twilio-account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--twilio-auth-token", default="emulator-auth-token")
    parser.add_argument("--twilio-messaging-service-sid", default=DEFAULT_SERVICE_SID)
    parser.add_argument("--twilio-from", default="+15005550006")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> tuple[SendGridEmulator, TwilioEmulator]:
    """Both emulators, configured from the options but not started."""
    base = args.webhook_base.rstrip("/") if args.webhook_base else None
    key = args.sendgrid_private_key.read_bytes() if args.sendgrid_private_key else None
    sendgrid = SendGridEmulator(
        api_key=args.sendgrid_api_key, host=args.host, port=args.sendgrid_port, private_key=key,
        webhook_url=f"{base}/webhooks/sendgrid" if base else None,
    )
    twilio = TwilioEmulator(
        account_sid=args.twilio_account_sid, auth_token=args.twilio_auth_token, host=args.host,
        port=args.twilio_port, messaging_service_sid=args.twilio_messaging_service_sid,
        service_number=args.twilio_from,
        status_callback_url=f"{base}/webhooks/twilio/status" if base else None,
        inbound_url=f"{base}/webhooks/twilio/inbound" if base else None,
    )
    return sendgrid, twilio


def instructions(sendgrid: SendGridEmulator, twilio: TwilioEmulator) -> str:
    """The environment that points outreach at the running emulators."""
    env = {
        "EMAIL_BACKEND": "sendgrid", "SENDGRID_API_HOST": sendgrid.url,
        "SENDGRID_API_KEY": sendgrid.api_key,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid.public_key_b64,
        "SMS_BACKEND": "twilio", "TWILIO_API_BASE": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": twilio.messaging_service_sid,
        "TWILIO_FROM": twilio.service_number, "NO_PROXY": "127.0.0.1,localhost",
    }
    lines = [f"SendGrid emulator: {sendgrid.url}  (control: {sendgrid.url}/_emulator/state)",
             f"Twilio emulator:   {twilio.url}  (control: {twilio.url}/_emulator/state)",
             "", "Point outreach at them with:"]
    lines += [f"export {name}={value}" for name, value in env.items()]
    if sendgrid.webhook_url:
        lines += ["", f"Event webhooks go to {sendgrid.webhook_url}, "
                      f"{twilio.status_callback_url} and {twilio.inbound_url}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Start both emulators, print the settings, serve until interrupted."""
    sendgrid, twilio = build(parse_args(argv))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sendgrid, twilio:
        print(instructions(sendgrid, twilio), flush=True)
        print("\nPress Ctrl-C to stop.", flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("emulators stopped", flush=True)


if __name__ == "__main__":
    main()
