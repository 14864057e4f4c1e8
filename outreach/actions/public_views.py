"""Public action pages: the form, its submission, the thank-you, the live count, double opt-in.

Paths: GET|POST /a/<slug>, GET /a/<slug>/thanks/<token>, GET /a/<slug>/count.json,
GET|POST /a/<slug>/confirm/<token>. Query parameters of GET /a/<slug>: `t` and `l` (a blast
email's tracking token and link position, for attribution), `source`, `ref` (a supporter's
referral code) and `embed=1` (no page chrome, for the iframe snippet). These pages may be
framed by other sites (frame-ancestors from ACTION_FRAME_ANCESTORS, default *); no other is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer

from outreach import db
from outreach.actions import abuse, forms, jobs, optin, service, stats, submit
from outreach.actions.models import ActionPage, PageKind
from outreach.auth import current_user, public
from outreach.exceptions import NotFound

bp = Blueprint("action_public", __name__)
THANKS_SALT = "outreach-action-thanks"


def init_app(app: Flask) -> None:
    """Register the public pages (they check their own signed form tokens) and the framing hook."""
    csrf = app.extensions["csrf"]
    csrf.exempt(submit_form)
    csrf.exempt(confirm_post)
    app.register_blueprint(bp)
    # First in the list, so it runs last (Flask runs after_request hooks in reverse order),
    # after the app's security headers hook has added its X-Frame-Options.
    app.after_request_funcs.setdefault(None, []).insert(0, _allow_framing)


def _allow_framing(response: Any) -> Any:
    """Drop the X-Frame-Options the app's security hook added to an embeddable response."""
    if g.get("action_embeddable"):
        response.headers.pop("X-Frame-Options", None)
    return response


def _embeddable(response: Any, page: ActionPage | None = None) -> Any:
    """Let other sites frame this response (CSP frame-ancestors; no X-Frame-Options)."""
    ancestors = current_app.config.get("ACTION_FRAME_ANCESTORS") or "*"
    form_action = "'self'"
    if page is not None and page.redirect_url:
        parts = urlsplit(page.redirect_url)
        form_action += f" {parts.scheme}://{parts.netloc}"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
        f"script-src 'self'; connect-src 'self'; form-action {form_action}; base-uri 'none'; "
        f"frame-ancestors {ancestors}")
    response.headers.pop("X-Frame-Options", None)
    g.action_embeddable = True
    return response


def _page(slug: str) -> ActionPage:
    try:
        return service.page_by_slug(db.session(), slug,
                                    published_only=current_user() is None)
    except NotFound:
        abort(404)


def _render(page: ActionPage, status: int = 200, **context: Any) -> Any:
    session = db.session()
    embed = bool(context.pop("embed", False))
    context.setdefault("values", forms.form_values(page, None))
    context.setdefault("errors", {})
    html = render_template(
        "actions/page.html", page=page, config=service.field_config(page),
        targets=service.active_targets(session, page.id) if page.kind == PageKind.LETTER else [],
        token=forms.form_token(page), direction=service.text_direction(page.language),
        embed=embed, honeypot=abuse.HONEYPOT_FIELD, limits=forms.MAX_LENGTHS, **context)
    return _embeddable(current_app.make_response((html, status)), page)


@bp.get("/a/<slug>")
@public
def form(slug: str) -> Any:
    """The action page and its form (works without JavaScript)."""
    page = _page(slug)
    session = db.session()
    found = forms.attribution(request.args)
    blast_id, _, _ = submit.resolve_blast(session, found["token"], found["link_position"])
    if not blast_id:
        found["token"] = found["link_position"] = None
    embed = request.args.get("embed") == "1"
    if page.published and request.method == "GET":  # HEAD: link checkers, not visitors
        referrer = submit.referrer_of(session, found["ref"])
        stats.bump(session, page.id, submit.source_key(found["source"], blast_id, referrer,
                                                       embed), views=1)
        session.commit()
    return _render(page, attribution=found, embed=embed)


@bp.post("/a/<slug>")
@public
def submit_form(slug: str) -> Any:
    """Take the action: 422 lists fixable fields; bots and honeypots see a thank-you."""
    request.max_content_length = forms.MAX_FORM_BYTES
    page = _page(slug)
    session = db.session()
    embed = request.form.get("embed") == "1"
    found = forms.attribution(request.form)
    values = forms.form_values(page, request.form)
    if not _same_origin():
        abort(400, description="This form must be sent from its own page.")
    try:
        forms.check_form_token(page, request.form.get("csrf_token"))
    except forms.FormExpired as exc:
        return _render(page, 400, values=values, attribution=found, embed=embed,
                       form_error=str(exc))
    if abuse.is_bot(request.form):
        return _thanks_redirect(page, None, None, embed)
    targets = service.active_targets(session, page.id)
    entry, errors = forms.read_entry(page, request.form, targets)
    if errors:
        return _render(page, 422, values=values, errors=errors, attribution=found, embed=embed)
    if not abuse.allow_ip(request.remote_addr) or not abuse.allow_addresses(
            [entry.contact.get("email"), entry.contact.get("phone")]):
        return _render(page, 429, values=values, attribution=found, embed=embed,
                       form_error="Too many submissions from here. Please try again later.")
    with db.transaction() as session:
        result = submit.submit(session, page, entry, request.remote_addr,
                               request.user_agent.string or "", embed)
    jobs.dispatch(result.jobs, result.digest_pages)
    if page.redirect_url:
        return redirect(page.redirect_url, 303)
    pending = any(job[1] is jobs.send_optin_email for job in result.jobs)
    return _thanks_redirect(page, result.submission_id, result.contact_id, embed, pending)


def _same_origin() -> bool:
    """False when the browser says the form was posted from another site."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    allowed = {request.host, urlsplit(current_app.config["PUBLIC_BASE_URL"]).netloc}
    return urlsplit(origin).netloc in allowed


def _thanks_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=THANKS_SALT)


def _thanks_redirect(page: ActionPage, submission_id: int | None, contact_id: int | None,
                     embed: bool, pending: bool = False) -> Any:
    token = _thanks_signer().dumps({"s": submission_id or 0, "c": contact_id, "o": pending})
    target = url_for("action_public.thanks", slug=page.slug, token=token,
                     embed="1" if embed else None)
    return _embeddable(redirect(target, 303), page)


@bp.get("/a/<slug>/thanks/<token>")
@public
def thanks(slug: str, token: str) -> Any:
    """The thank-you, with share links carrying the supporter's referral code."""
    page = _page(slug)
    try:
        data = _thanks_signer().loads(token, max_age=7 * 24 * 3600)
    except BadSignature:
        abort(404)
    contact_id = data.get("c") if isinstance(data, dict) else None
    share = None
    if page.share_step:
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        code = submit.referral_code(contact_id) if isinstance(contact_id, int) else None
        share = service.share_links(page, base, code)
    html = render_template("actions/thanks.html", page=page, share=share,
                           pending=bool(isinstance(data, dict) and data.get("o")),
                           direction=service.text_direction(page.language),
                           embed=request.args.get("embed") == "1")
    return _embeddable(current_app.make_response(html), page)


@bp.get("/a/<slug>/count.json")
@public
def count(slug: str) -> Any:
    """The live figures a petition or letter page shows (polled by a small script)."""
    page = _page(slug)
    response = jsonify({"count": page.signature_count, "goal": page.petition_goal,
                        "letters_sent": page.letters_sent})
    response.headers["Cache-Control"] = "public, max-age=10"
    return response


@bp.get("/a/<slug>/confirm/<token>")
@public
def confirm_page(slug: str, token: str) -> Any:
    """A double opt-in link: a button to confirm (a GET grants nothing: scanners follow links)."""
    page = _page(slug)
    found = optin.pending(db.session(), page, token)
    state = "invalid" if found is None else optin.state(db.session(), found[1])
    return _confirm_render(page, token, state)


@bp.post("/a/<slug>/confirm/<token>")
@public
def confirm_post(slug: str, token: str) -> Any:
    """Confirm a double opt-in: email consent granted with the form's and this evidence."""
    page = _page(slug)
    with db.transaction() as session:
        found = optin.pending(session, page, token)
        state = "invalid" if found is None else optin.confirm(
            session, page, found[0], found[1], request.remote_addr)
    if state == "confirmed" and found is not None and page.autoresponse_email_template_id:
        jobs.dispatch([("email", jobs.send_autoresponse, (found[0].id,))])
    return _confirm_render(page, token, state)


def _confirm_render(page: ActionPage, token: str, state: str) -> Any:
    html = render_template("actions/confirm.html", page=page, token=token, state=state,
                           direction=service.text_direction(page.language), embed=False)
    return _embeddable(current_app.make_response((html, 404 if state == "invalid" else 200)),
                       page)
