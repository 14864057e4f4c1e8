"""Local HTTP emulators of SendGrid's mail-send API and Twilio's Messages API, for tests."""

from outreach.emulators.sendgrid import SendGridEmulator
from outreach.emulators.twilio import TwilioEmulator, count_segments

__all__ = ["SendGridEmulator", "TwilioEmulator", "count_segments"]
