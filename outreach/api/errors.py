"""The JSON API's error shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def api_error(status: int, code: str, message: str, details: Any = None) -> Response:
    """A JSON error response in the contract's shape."""
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response
