"""Staff account operations: creating users, checking passwords, throttling, API tokens."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from redis import Redis
from sqlalchemy.orm import Session

from outreach.accounts.models import ApiToken, Role, User
from outreach.db import utcnow
from outreach.exceptions import Conflict, NotFound, ValidationError

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verifying against this keeps the time of a login for an unknown email like a known one.
_DUMMY_HASH = _hasher.hash("not a real password")
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "otk_"


def normalize_staff_email(email: str) -> str:
    """Validate a staff email address (syntax only) and lower-case it."""
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationError("Invalid email address", {"email": str(exc)}) from None


def hash_password(password: str) -> str:
    """Hash a password with Argon2id after checking it is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            "Password too short",
            {"password": f"must have at least {MIN_PASSWORD_LENGTH} characters"},
        )
    return _hasher.hash(password)


def create_user(db: Session, email: str, role: str, password: str, name: str = "") -> User:
    """Create a staff user; refuse a duplicate email or an unknown role."""
    email = normalize_staff_email(email)
    try:
        role_value = Role(role)
    except ValueError:
        raise ValidationError(
            "Unknown role", {"role": "must be one of admin, organizer, viewer"}
        ) from None
    if db.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"A user with email {email} already exists")
    user = User(email=email, role=role_value.value, password_hash=hash_password(password),
                name=name)
    db.add(user)
    db.flush()
    return user


def get_user_by_email(db: Session, email: str) -> User:
    """Find a user by email or raise NotFound."""
    user = db.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"No user with email {email}")
    return user


def authenticate(db: Session, email: str, password: str) -> User | None:
    """Return the active user whose password matches, else None (in constant-ish time)."""
    user = db.scalar(sa.select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def set_password(db: Session, user: User, password: str) -> None:
    """Replace a user's password."""
    user.password_hash = hash_password(password)


def _throttle_keys(email: str, ip: str) -> list[str]:
    return [f"outreach:login-fail:email:{email.strip().lower()}", f"outreach:login-fail:ip:{ip}"]


def login_locked(redis: Redis, email: str, ip: str, max_failures: int) -> bool:
    """True when this email or this IP failed too many times recently."""
    counts = redis.mget(_throttle_keys(email, ip))
    # The IP limit is looser: an office may share one address.
    return int(counts[0] or 0) >= max_failures or int(counts[1] or 0) >= max_failures * 4


def record_login_failure(redis: Redis, email: str, ip: str, window_seconds: int) -> None:
    """Count a failed login for the email and the IP over a sliding lockout window."""
    pipe = redis.pipeline()
    for key in _throttle_keys(email, ip):
        pipe.incr(key)
        pipe.expire(key, window_seconds)
    pipe.execute()


def clear_login_failures(redis: Redis, email: str) -> None:
    """Forget an email's failed logins after a successful one."""
    redis.delete(_throttle_keys(email, "")[0])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Session, user: User, name: str = "") -> str:
    """Create an API token for a user and return it; only its digest is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user=user, name=name, prefix=token[:10], digest=_digest(token)))
    db.flush()
    return token


def user_for_token(db: Session, token: str) -> User | None:
    """The active user owning a valid, unrevoked token, or None."""
    row = db.scalar(
        sa.select(ApiToken).where(ApiToken.digest == _digest(token), ApiToken.revoked_at.is_(None))
    )
    if row is None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    return row.user


def revoke_token(db: Session, token_id: int) -> None:
    """Revoke a token by id."""
    row = db.get(ApiToken, token_id)
    if row is None:
        raise NotFound("No such token")
    row.revoked_at = utcnow()


def list_users(db: Session) -> list[User]:
    """All staff users, by email."""
    return list(db.scalars(sa.select(User).order_by(User.email)))


def update_user(db: Session, user_id: int, role: str | None, active: bool | None) -> User:
    """Change a user's role or active flag, refusing to leave no active admin."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    if role is not None:
        try:
            user.role = Role(role).value
        except ValueError:
            raise ValidationError(
                "Unknown role", {"role": "must be admin, organizer or viewer"}
            ) from None
    if active is not None:
        user.active = active
    db.flush()
    admins = db.scalar(
        sa.select(sa.func.count()).select_from(User)
        .where(User.role == Role.ADMIN.value, User.active.is_(True))
    )
    if not admins:
        raise Conflict("At least one active admin must remain")
    return user
