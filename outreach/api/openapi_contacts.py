"""OpenAPI fragments for contacts, lists, segments, imports, exports and suppressions."""

from __future__ import annotations

from typing import Any

from outreach.api.openapi import add_path, error_responses


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return _obj({"data": {"type": "array", "items": item},
                 "next_cursor": {"type": ["string", "null"]}}, ["data", "next_cursor"])


def _body(schema: dict[str, Any], content_type: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {content_type: {"schema": schema}}}


def _param(name: str, description: str, kind: str = "string",
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": {"type": kind}}


def _id(name: str) -> dict[str, Any]:
    return _param(name, "Id", "integer", "path")


STR, INT, NULLSTR = {"type": "string"}, {"type": "integer"}, {"type": ["string", "null"]}
NULLINT = {"type": ["integer", "null"]}
TIME = {"type": "string", "format": "date-time"}
CONSENT_STATE = {"type": "string", "enum": ["granted", "revoked", "none"]}
CONTACT = _obj({
    "id": INT, "email": NULLSTR, "phone": {"type": ["string", "null"], "description": "E.164"},
    "first_name": NULLSTR, "last_name": NULLSTR, "postal_code": NULLSTR, "timezone": NULLSTR,
    "fields": {"type": "object"}, "tags": {"type": "array", "items": STR},
    "lists": {"type": "array", "items": INT},
    "consent": _obj({"email": CONSENT_STATE, "sms": CONSENT_STATE}),
    "suppressed": _obj({"email": NULLSTR, "sms": NULLSTR}),
    "created_at": TIME, "updated_at": TIME})
GIVEN_CONSENT = {"type": "string", "enum": ["granted", "revoked"]}
CONTACT_INPUT = _obj({
    "email": STR, "phone": STR, "first_name": STR, "last_name": STR, "postal_code": STR,
    "timezone": STR, "fields": {"type": "object"}, "tags": {"type": "array", "items": STR},
    "lists": {"type": "array", "items": INT},
    "consent": _obj({"email": GIVEN_CONSENT, "sms": GIVEN_CONSENT}),
    "consent_source": {"type": "string", "description": "Required with consent"}})
CONSENT_EVENT = _obj({"id": INT, "channel": STR, "status": STR, "source": STR,
                      "evidence": {"type": "object"}, "created_by_id": INT,
                      "created_at": TIME})
LIST = _obj({"id": INT, "name": STR, "description": STR, "members": INT, "created_at": TIME})
LIST_INPUT = _obj({"name": STR, "description": STR})
SEGMENT = _obj({"id": INT, "name": STR, "rules": {"type": "object"}, "created_at": TIME,
                "updated_at": TIME})
RULES = {"type": "object", "description": '{"match": "all"|"any", "rules": [{"field", "op", '
         '"value"} or nested groups]}'}
COUNT = _obj({"count": INT}, ["count"])
STATUS = {"type": "string", "enum": ["queued", "running", "done", "failed"]}
IMPORT = _obj({"id": INT, "status": STATUS, "rows_total": INT, "created": INT, "updated": INT,
               "skipped": INT, "rejected": INT, "errors_url": STR, "phase": STR,
               "progress": INT, "error": NULLSTR},
              ["id", "status", "rows_total", "created", "updated", "rejected", "errors_url"])
EXPORT = _obj({"id": INT, "kind": {"type": "string", "enum": ["contacts", "suppressions"]},
               "status": STATUS, "rows": INT, "list_id": NULLINT, "segment_id": NULLINT,
               "error": NULLSTR, "download_url": NULLSTR})
SUPPRESSION = _obj({"id": INT, "channel": {"type": "string", "enum": ["email", "sms"]},
                    "address": STR, "reason": STR, "note": STR, "created_at": TIME})
CSV = {"description": "CSV file", "content": {"text/csv": {"schema": STR}}}
PAGING = [_param("limit", "Page size, 1 to 1000 (default 100)", "integer"),
          _param("cursor", "next_cursor of the previous page")]

add_path("/contacts", "get", {
    "summary": "Search contacts", "parameters": [
        _param("email", "Exact email (normalized)"), _param("phone", "Phone, any format"),
        _param("list", "List id", "integer"), _param("tag", "Tag name"),
        _param("segment", "Segment id", "integer"),
        _param("q", "Text in email, phone or names"), *PAGING],
    "responses": {"200": _json(_page(CONTACT)), **error_responses(401, 422)}})
add_path("/contacts", "post", {
    "summary": "Create a contact (organizer)", "requestBody": _body(CONTACT_INPUT),
    "responses": {"201": _json(CONTACT, "Created"), **error_responses(401, 403, 409, 422)}})
add_path("/contacts/{contact_id}", "get", {
    "summary": "A contact", "parameters": [_id("contact_id")],
    "responses": {"200": _json(CONTACT), **error_responses(401, 404)}})
add_path("/contacts/{contact_id}", "patch", {
    "summary": "Change a contact's fields or consent (organizer)",
    "parameters": [_id("contact_id")], "requestBody": _body(CONTACT_INPUT),
    "responses": {"200": _json(CONTACT), **error_responses(401, 403, 404, 409, 422)}})
add_path("/contacts/{contact_id}", "delete", {
    "summary": "Erase a contact; its addresses are tombstoned (organizer)",
    "parameters": [_id("contact_id")],
    "responses": {"204": {"description": "Erased"}, **error_responses(401, 403, 404)}})
add_path("/contacts/{contact_id}/consent", "get", {
    "summary": "A contact's consent ledger, newest first", "parameters": [_id("contact_id")],
    "responses": {"200": _json(_page(CONSENT_EVENT)), **error_responses(401, 404)}})

add_path("/lists", "get", {
    "summary": "Lists with member counts", "parameters": PAGING,
    "responses": {"200": _json(_page(LIST)), **error_responses(401, 422)}})
add_path("/lists", "post", {
    "summary": "Create a list (organizer)", "requestBody": _body(LIST_INPUT),
    "responses": {"201": _json(LIST, "Created"), **error_responses(401, 403, 409, 422)}})
add_path("/lists/{list_id}", "get", {
    "summary": "A list", "parameters": [_id("list_id")],
    "responses": {"200": _json(LIST), **error_responses(401, 404)}})
add_path("/lists/{list_id}", "patch", {
    "summary": "Rename a list or change its description (organizer)",
    "parameters": [_id("list_id")], "requestBody": _body(LIST_INPUT),
    "responses": {"200": _json(LIST), **error_responses(401, 403, 404, 409, 422)}})
add_path("/lists/{list_id}", "delete", {
    "summary": "Delete a list; its contacts stay (organizer)", "parameters": [_id("list_id")],
    "responses": {"204": {"description": "Deleted"}, **error_responses(401, 403, 404)}})
add_path("/lists/{list_id}/members", "post", {
    "summary": "Add contacts to a list (organizer)", "parameters": [_id("list_id")],
    "requestBody": _body(_obj({"contact_ids": {"type": "array", "items": INT}},
                              ["contact_ids"])),
    "responses": {"200": _json(_obj({"list_id": INT, "added": INT, "members": INT})),
                  **error_responses(401, 403, 404, 422)}})
add_path("/lists/{list_id}/members/{contact_id}", "delete", {
    "summary": "Take a contact off a list (organizer)",
    "parameters": [_id("list_id"), _id("contact_id")],
    "responses": {"204": {"description": "Removed"}, **error_responses(401, 403, 404)}})

add_path("/segments", "get", {
    "summary": "Saved segments", "parameters": PAGING,
    "responses": {"200": _json(_page(SEGMENT)), **error_responses(401, 422)}})
add_path("/segments", "post", {
    "summary": "Save a segment (organizer)",
    "requestBody": _body(_obj({"name": STR, "rules": RULES}, ["name", "rules"])),
    "responses": {"201": _json(SEGMENT, "Created"), **error_responses(401, 403, 409, 422)}})
add_path("/segments/{segment_id}", "get", {
    "summary": "A segment", "parameters": [_id("segment_id")],
    "responses": {"200": _json(SEGMENT), **error_responses(401, 404)}})
add_path("/segments/{segment_id}", "put", {
    "summary": "Replace a segment's name and rules (organizer)",
    "parameters": [_id("segment_id")],
    "requestBody": _body(_obj({"name": STR, "rules": RULES}, ["name", "rules"])),
    "responses": {"200": _json(SEGMENT), **error_responses(401, 403, 404, 409, 422)}})
add_path("/segments/{segment_id}", "delete", {
    "summary": "Delete a segment (organizer)", "parameters": [_id("segment_id")],
    "responses": {"204": {"description": "Deleted"}, **error_responses(401, 403, 404)}})
add_path("/segments/{segment_id}/count", "get", {
    "summary": "How many contacts a segment matches now", "parameters": [_id("segment_id")],
    "responses": {"200": _json(COUNT), **error_responses(401, 404)}})
add_path("/segments/count", "post", {
    "summary": "How many contacts rules match (organizer; the builder's live count)",
    "requestBody": _body(_obj({"rules": RULES}, ["rules"])),
    "responses": {"200": _json(COUNT), **error_responses(401, 403, 422)}})

add_path("/imports", "get", {
    "summary": "Recent imports, newest first", "parameters": PAGING,
    "responses": {"200": _json(_page(IMPORT)), **error_responses(401, 422)}})
add_path("/imports", "post", {
    "summary": "Upload a CSV of contacts to import (organizer); poll the import",
    "requestBody": _body(_obj({
        "file": {"type": "string", "format": "binary"},
        "list": {"type": "string", "description": "List id or name (a new name creates it)"},
        "mode": {"type": "string", "enum": ["add", "update"], "default": "add"},
        "consent": {"type": "string", "enum": ["", "email", "sms", "email,sms"]},
        "consent_source": {"type": "string", "description": "Required with consent"}},
        ["file"]), "multipart/form-data"),
    "responses": {"202": _json(IMPORT, "Queued"), **error_responses(401, 403, 413, 422)}})
add_path("/imports/{import_id}", "get", {
    "summary": "An import's status and counts", "parameters": [_id("import_id")],
    "responses": {"200": _json(IMPORT), **error_responses(401, 404)}})
add_path("/imports/{import_id}/errors", "get", {
    "summary": "Rejected rows as CSV: line, reason, then the row",
    "parameters": [_id("import_id")], "responses": {"200": CSV, **error_responses(401, 404)}})

add_path("/exports", "get", {
    "summary": "Recent exports, newest first (organizer; suppression exports to admins)",
    "parameters": PAGING,
    "responses": {"200": _json(_page(EXPORT)), **error_responses(401, 403, 422)}})
add_path("/exports", "post", {
    "summary": "Queue a CSV export of contacts (organizer) or suppressions (admin)",
    "requestBody": _body(_obj({"kind": {"type": "string", "enum": ["contacts", "suppressions"]},
                               "list_id": INT, "segment_id": INT}, ["kind"])),
    "responses": {"202": _json(EXPORT, "Queued"), **error_responses(401, 403, 422)}})
add_path("/exports/{export_id}", "get", {
    "summary": "An export's status and download URL", "parameters": [_id("export_id")],
    "responses": {"200": _json(EXPORT), **error_responses(401, 403, 404)}})
add_path("/exports/{export_id}/download", "get", {
    "summary": "The exported CSV (attachment)", "parameters": [_id("export_id")],
    "responses": {"200": CSV, **error_responses(401, 403, 404, 409)}})

add_path("/suppressions", "get", {
    "summary": "Suppressions", "parameters": [
        _param("channel", "email or sms"), _param("address", "An address, any format"),
        *PAGING],
    "responses": {"200": _json(_page(SUPPRESSION)), **error_responses(401, 422)}})
add_path("/suppressions", "post", {
    "summary": "Suppress an address (organizer); 200 with the existing one if already there",
    "requestBody": _body(_obj({"channel": {"type": "string", "enum": ["email", "sms"]},
                               "address": STR, "reason": STR, "note": STR},
                              ["channel", "address"])),
    "responses": {"201": _json(SUPPRESSION, "Created"), "200": _json(SUPPRESSION, "Existing"),
                  **error_responses(401, 403, 422)}})
add_path("/suppressions/{suppression_id}", "delete", {
    "summary": "Lift a suppression (admin), with a reason (JSON body or ?reason=)",
    "parameters": [_id("suppression_id"), _param("reason", "Why it is lifted")],
    "responses": {"204": {"description": "Lifted"}, **error_responses(401, 403, 404, 422)}})
add_path("/suppressions/import", "post", {
    "summary": "Suppress the addresses of a CSV: channel, address, reason (admin)",
    "requestBody": _body(_obj({"file": {"type": "string", "format": "binary"},
                               "channel": {"type": "string", "enum": ["email", "sms"]},
                               "reason": STR}, ["file"]), "multipart/form-data"),
    "responses": {"200": _json(_obj({"rows_total": INT, "added": INT, "existing": INT,
                                     "rejected": INT, "rejections": {"type": "array"}})),
                  **error_responses(401, 403, 413, 422)}})
