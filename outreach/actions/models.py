"""Action pages, their letter targets, supporters' submissions and letters, and daily rollups."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from outreach.db import Base, UTCDateTime, utcnow

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class PageKind(enum.StrEnum):
    """What a supporter does on a page."""

    SIGNUP = "signup"
    PETITION = "petition"
    LETTER = "letter"


class DeliveryMode(enum.StrEnum):
    """How a letter page's letters reach their targets."""

    ONE_BY_ONE = "one_by_one"
    DAILY_DIGEST = "daily_digest"


class LetterStatus(enum.StrEnum):
    """Where one letter stands; flagged letters wait for a moderator."""

    PENDING = "pending"
    FLAGGED = "flagged"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"
    FAILED = "failed"


class ActionPage(Base):
    """A public page at /a/<slug> where supporters sign up, sign or write a letter."""

    __tablename__ = "action_pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(12), default=PageKind.SIGNUP.value)
    title: Mapped[str] = mapped_column(sa.String(200))
    image_url: Mapped[str | None] = mapped_column(sa.Text)
    intro: Mapped[str] = mapped_column(sa.Text, default="")
    language: Mapped[str] = mapped_column(sa.String(35), default="en")  # BCP 47
    # {"first_name": {"mode": "hidden|optional|required", "label": ...}, ..., "questions":
    #  [{"key", "label", "required"}]}
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    button_text: Mapped[str] = mapped_column(sa.String(100), default="")
    email_consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    sms_consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    thank_you_text: Mapped[str] = mapped_column(sa.Text, default="")
    redirect_url: Mapped[str | None] = mapped_column(sa.Text)
    share_step: Mapped[bool] = mapped_column(default=True)
    list_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lists.id", ondelete="SET NULL"))
    autoresponse_email_template_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("templates.id", ondelete="SET NULL"))
    autoresponse_sms_template_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("templates.id", ondelete="SET NULL"))
    double_opt_in: Mapped[bool] = mapped_column(default=False)
    petition_goal: Mapped[int | None] = mapped_column()
    letter_subject: Mapped[str] = mapped_column(sa.Text, default="")
    letter_body: Mapped[str] = mapped_column(sa.Text, default="")
    delivery_mode: Mapped[str] = mapped_column(sa.String(20),
                                               default=DeliveryMode.ONE_BY_ONE.value)
    max_letters_per_target: Mapped[int] = mapped_column(default=1)
    keyword: Mapped[str | None] = mapped_column(sa.String(40), unique=True)  # upper case
    welcome_sms: Mapped[str] = mapped_column(sa.Text, default="")
    published: Mapped[bool] = mapped_column(default=False)
    # Counters kept by the submission and delivery code (atomic increments).
    signature_count: Mapped[int] = mapped_column(default=0)  # counted submissions
    letters_sent: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class LetterTarget(Base):
    """A decision-maker a letter page writes to; kept (inactive) once letters name it."""

    __tablename__ = "action_letter_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(
        sa.ForeignKey("action_pages.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(320))
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class Submission(Base):
    """One supporter's action on a page, with where they came from."""

    __tablename__ = "action_submissions"
    __table_args__ = (
        sa.Index("ix_action_submissions_page_contact", "page_id", "contact_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    page_id: Mapped[int] = mapped_column(sa.ForeignKey("action_pages.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    # The answers, and the exact consent texts shown (for double opt-in evidence).
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent_hash: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(60), default="direct")
    ref: Mapped[str | None] = mapped_column(sa.String(40))
    referrer_contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"))
    blast_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("blasts.id", ondelete="SET NULL"), index=True)
    message_id: Mapped[int | None] = mapped_column(
        BIGINT, sa.ForeignKey("messages.id", ondelete="SET NULL"))
    link_position: Mapped[int | None] = mapped_column()
    counted: Mapped[bool] = mapped_column(default=True)  # False: a repeat within a day
    new_contact: Mapped[bool] = mapped_column(default=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # double opt-in
    email_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # autoresponses
    sms_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Letter(Base):
    """A supporter's letter to one target, moderated when flagged, then delivered."""

    __tablename__ = "action_letters"
    __table_args__ = (
        sa.Index("ix_action_letters_page_status", "page_id", "status"),
        sa.Index("ix_action_letters_contact_target", "contact_id", "target_id"),
    )

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    page_id: Mapped[int] = mapped_column(sa.ForeignKey("action_pages.id", ondelete="CASCADE"))
    submission_id: Mapped[int] = mapped_column(
        BIGINT, sa.ForeignKey("action_submissions.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contacts.id", ondelete="SET NULL"))
    target_id: Mapped[int] = mapped_column(
        sa.ForeignKey("action_letter_targets.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    signature: Mapped[str] = mapped_column(sa.String(300), default="")
    reply_to: Mapped[str | None] = mapped_column(sa.String(320))
    status: Mapped[str] = mapped_column(sa.String(10), default=LetterStatus.PENDING.value)
    flagged_words: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    moderated_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(sa.String(100))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PageStat(Base):
    """Counters per page, UTC day and source (the page-view rollup): figures never scan rows."""

    __tablename__ = "action_page_stats"
    __table_args__ = (sa.UniqueConstraint("page_id", "day", "source"),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    page_id: Mapped[int] = mapped_column(sa.ForeignKey("action_pages.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(60))
    views: Mapped[int] = mapped_column(default=0)
    submissions: Mapped[int] = mapped_column(default=0)  # counted ones
    new_contacts: Mapped[int] = mapped_column(default=0)
    letters: Mapped[int] = mapped_column(default=0)  # letters written
