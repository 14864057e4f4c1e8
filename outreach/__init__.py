"""outreach: an email and SMS campaign engine for advocacy organizations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """A top-level project folder (templates, static, migrations), in a checkout or a wheel."""
    checkout = PACKAGE_DIR.parent / name
    return checkout if checkout.is_dir() else PACKAGE_DIR / "_bundled" / name


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app (also used by the CLI and workers) from the environment and overrides."""
    from dotenv import load_dotenv

    from outreach import config as settings

    if not os.environ.get("OUTREACH_NO_DOTENV"):
        load_dotenv(os.path.join(os.getcwd(), ".env"), override=False)
    overrides = dict(config or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get("OUTREACH_INSTANCE")
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
        instance_path=str(Path(instance_path or Path.cwd() / "instance").resolve()),
        instance_relative_config=True,
    )
    app.config.update(settings.from_environment())
    app.config.update(overrides)
    settings.finalize(app.config, Path(app.instance_path))
    from outreach.tracking import hits

    hits.init_app(app)  # opens and clicks skip Flask's request machinery (before ProxyFix wraps)
    if app.config["TRUST_PROXY"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Behind a load balancer: the client's IP, scheme and host as it saw them (needed for
        # Twilio's signatures, Apple-proxy detection and Secure cookies).
        hops = app.config["TRUST_PROXY"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    _configure_logging(app)
    _init_extensions(app)
    return app


def _init_extensions(app: Flask) -> None:
    """Let each subsystem register itself."""
    from flask_wtf.csrf import CSRFProtect

    from outreach import api, auth, db, observability, queue, web
    from outreach.accounts.views import bp as accounts_bp
    from outreach.actions import public_views as action_public_views
    from outreach.actions.views import bp as actions_bp
    from outreach.blasts.views import bp as blasts_bp
    from outreach.channels.views import bp as outbox_bp
    from outreach.contacts.views import bp as contacts_bp
    from outreach.content.views import bp as content_bp
    from outreach.metrics.views import bp as metrics_bp
    from outreach.tracking import views as tracking_views

    # Ids in paths are SQL INTEGERs: a larger number is a 404, not an overflow error (500).
    app.url_map.converters["int"] = IdConverter
    db.init_app(app)
    queue.init_app(app)
    csrf = CSRFProtect(app)
    app.extensions["csrf"] = csrf
    observability.init_app(app)  # before auth: request ids, and scrapes carry their own token
    auth.init_app(app)
    app.register_blueprint(web.bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(outbox_bp)
    app.register_blueprint(contacts_bp)
    app.register_blueprint(content_bp)
    app.register_blueprint(blasts_bp)
    app.register_blueprint(metrics_bp)
    api.init_app(app, csrf)
    tracking_views.init_app(app, csrf)
    app.register_blueprint(actions_bp)
    action_public_views.init_app(app)
    web.register_error_pages(app)
    app.view_functions["static"]._outreach_public = True  # type: ignore[attr-defined]
    app.jinja_env.autoescape = True


class IdConverter(IntegerConverter):
    """`<int:...>` in routes: past what an INTEGER column holds, nothing can exist (404)."""

    def to_python(self, value: str) -> Any:
        number = super().to_python(value)
        if number > 2**31 - 1:
            raise NotFound()  # not a ValidationError: that would make the route a 405
        return number


def _configure_logging(app: Flask) -> None:
    """Log to stderr as LOG_FORMAT says (text or json), with request and job context."""
    from outreach.observability import logs

    logs.configure(app.config)
