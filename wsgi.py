"""WSGI entry point for gunicorn (Procfile: web)."""

from outreach import create_app

app = create_app()
