"""`outreach emulators`: run the local SendGrid and Twilio emulators (development only)."""

from __future__ import annotations

import click


@click.command("emulators", context_settings={"ignore_unknown_options": True,
                                              "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def emulators(args: tuple[str, ...]) -> None:
    """Local SendGrid and Twilio emulators for trying the real adapters (--help for options)."""
    from outreach.emulators.__main__ import main

    main(list(args))
