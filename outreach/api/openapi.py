"""The OpenAPI document, built from small fragments each domain contributes."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
PATHS: dict[str, dict[str, Any]] = {}


def error_responses(*codes: int) -> dict[str, Any]:
    """Response entries for the given error status codes."""
    text = {401: "Missing or invalid token", 403: "Role too low", 404: "Not found",
            409: "Conflict", 422: "Invalid input", 413: "Too large"}
    return {str(c): {"description": text.get(c, "Error"),
                     "content": {"application/json": {"schema": ERROR}}} for c in codes}


def add_path(path: str, method: str, operation: dict[str, Any]) -> None:
    """Register one operation of the API in the document."""
    PATHS.setdefault(path, {})[method] = operation


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "outreach API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"],
                                         "properties": {"code": {"type": "string"},
                                                        "message": {"type": "string"},
                                                        "details": {"type": "object"}}}},
            }},
        },
        "paths": PATHS,
    }


USER = {"type": "object", "properties": {
    "id": {"type": "integer"}, "email": {"type": "string"}, "name": {"type": "string"},
    "role": {"type": "string", "enum": ["admin", "organizer", "viewer"]},
    "active": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"}}}
add_path("/me", "get", {"summary": "The user behind the token", "responses": {
    "200": {"description": "User", "content": {"application/json": {"schema": USER}}},
    **error_responses(401)}})
add_path("/users", "get", {"summary": "List staff users (admin)", "responses": {
    "200": {"description": "Users"}, **error_responses(401, 403)}})
add_path("/users", "post", {"summary": "Create a staff user (admin)", "requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["email", "role", "password"],
        "properties": {"email": {"type": "string"}, "role": {"type": "string"},
                       "password": {"type": "string", "minLength": 10},
                       "name": {"type": "string"}}}}}},
    "responses": {"201": {"description": "Created"}, **error_responses(401, 403, 409, 422)}})
add_path("/test-messages", "post", {"summary": "Queue a test email or text (organizer)",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["channel", "to", "body"],
        "properties": {"channel": {"type": "string", "enum": ["email", "sms"]},
                       "to": {"type": "string"}, "subject": {"type": "string"},
                       "body": {"type": "string"}}}}}},
    "responses": {"202": {"description": "Queued"}, **error_responses(401, 403, 422)}})
