"""`outreach contacts ...`: importing a CSV from the terminal."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from outreach import db
from outreach.contacts.imports import create_import, queue_import, run_import
from outreach.contacts.models import Import
from outreach.exceptions import ValidationError


@click.group("contacts")
def contacts() -> None:
    """Contacts: import from CSV."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", required=True, help="List to add everyone to (created "
              "if it does not exist).")
@click.option("--mode", type=click.Choice(["add", "update"]), default="add", show_default=True,
              help="add: only create new contacts; update: also fill and change existing ones.")
@click.option("--consent", default="", help="Consent these people gave: email, sms or email,sms.")
@click.option("--consent-source", default="", help="Where the consent was given (required "
              "with --consent), e.g. 'Petition form, March 2026'.")
@click.option("--background", is_flag=True, help="Queue the import for a worker instead.")
@with_appcontext
def import_command(file: Path, list_name: str, mode: str, consent: str, consent_source: str,
                   background: bool) -> None:
    """Import contacts from a CSV FILE into a list, with a progress bar."""
    try:
        with file.open("rb") as stream, db.transaction() as session:
            imp = create_import(session, stream, file.name, list_name, mode, consent,
                                consent_source)
    except ValidationError as exc:
        raise click.ClickException(exc.message) from None
    if background:
        queue_import(imp.id)
        click.echo(f"Import {imp.id} queued; a worker will run it.")
        return
    size = max(1, file.stat().st_size)
    with click.progressbar(length=100, label=f"Importing {file.name}") as bar:
        seen = {"percent": 0}

        def advance(rows: int, percent: int) -> None:
            bar.update(percent - seen["percent"])
            seen["percent"] = percent

        try:
            run_import(imp.id, advance)
        except Exception:  # noqa: BLE001 - the import row holds the reason; shown below
            pass
        bar.update(100 - seen["percent"])
    done = db.session().get(Import, imp.id)
    assert done is not None
    if done.status != "done":
        raise click.ClickException(f"Import failed: {done.error}")
    click.echo(f"{done.rows_total} rows ({size:,} bytes): {done.created} created, "
               f"{done.updated} updated, {done.skipped} already there, {done.rejected} rejected.")
    if done.rejected:
        click.echo(f"Rejected rows: outreach contacts rejections {done.id} > rejected.csv")


@contacts.command("rejections")
@click.argument("import_id", type=int)
@with_appcontext
def rejections_command(import_id: int) -> None:
    """Print the rejected rows of an import as CSV (line, reason, then the row)."""
    from outreach.contacts.imports import rejections_csv

    for chunk in rejections_csv(db.session(), import_id):
        click.echo(chunk, nl=False)
