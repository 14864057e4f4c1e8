"""The `outreach` command: users, tokens, help."""

from __future__ import annotations

import subprocess
import sys

from outreach import db
from outreach.accounts.service import get_user_by_email


def test_help_lists_the_contract_commands():
    out = subprocess.run([sys.executable, "-m", "outreach", "--help"], capture_output=True,
                         text=True, check=True, env={"PATH": "", "OUTREACH_NO_DOTENV": "1",
                                                     "SECRET_KEY": "x", "HOME": "/tmp"}).stdout
    for command in ("db", "users", "tokens", "worker", "dev"):
        assert f"  {command} " in out


def test_users_create_reads_password_from_stdin(app, runner):
    result = runner.invoke(args=["users", "create", "Boss@Example.org", "--role", "admin",
                                 "--password-stdin"], input="a long secret pw\n")
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.org" in result.output
    with app.app_context():
        assert get_user_by_email(db.session(), "boss@example.org").role == "admin"


def test_users_create_refuses_duplicates_and_short_passwords(runner):
    args = ["users", "create", "x@example.org", "--role", "viewer", "--password-stdin"]
    assert runner.invoke(args=args, input="short\n").exit_code == 1
    assert runner.invoke(args=args, input="long enough pw\n").exit_code == 0
    again = runner.invoke(args=args, input="long enough pw\n")
    assert again.exit_code == 1 and "already exists" in again.output


def test_users_create_with_prompt(runner):
    result = runner.invoke(args=["users", "create", "p@example.org", "--role", "organizer"],
                           input="prompted password\nprompted password\n")
    assert result.exit_code == 0, result.output


def test_tokens_create_prints_a_working_token(app, runner, client):
    runner.invoke(args=["users", "create", "bot@example.org", "--role", "organizer",
                        "--password-stdin"], input="a long secret pw\n")
    result = runner.invoke(args=["tokens", "create", "bot@example.org"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json["email"] == "bot@example.org"
    with app.app_context():
        from outreach.accounts.models import ApiToken

        stored = db.session().query(ApiToken).one()
    assert token not in (stored.digest, stored.prefix)  # only a digest is stored


def test_tokens_create_for_unknown_user_fails(runner):
    result = runner.invoke(args=["tokens", "create", "ghost@example.org"])
    assert result.exit_code == 1 and "No user" in result.output
