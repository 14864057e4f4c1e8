"""OpenAPI fragments for templates and blasts."""

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


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return _obj({"data": {"type": "array", "items": item},
                 "next_cursor": {"type": ["string", "null"]}}, ["data", "next_cursor"])


def _param(name: str, description: str, kind: str = "string",
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": {"type": kind}}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLSTR, NULLINT = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
TIME = {"type": "string", "format": "date-time"}
NULLTIME = {"type": ["string", "null"], "format": "date-time"}
IDS = {"type": "array", "items": INT}
PAGING = [_param("limit", "Page size, 1 to 1000 (default 100)", "integer"),
          _param("cursor", "next_cursor of the previous page")]
TEMPLATE_ID = [_param("template_id", "Template id", "integer", "path")]
BLAST_ID = [_param("blast_id", "Blast id", "integer", "path")]
CHANNEL = {"type": "string", "enum": ["email", "sms"]}

TEMPLATE = _obj({
    "id": INT, "name": STR, "channel": CHANNEL,
    "subject": {"type": "string", "description": "Email"},
    "html": {"type": "string", "description": "Email, CSS inlined"},
    "text": {"type": "string", "description": "Email; generated from the HTML when empty"},
    "body": {"type": "string", "description": "SMS"}, "from_name": STR, "reply_to": NULLSTR,
    "append_stop": {"type": "boolean", "description": "SMS: append 'Reply STOP to opt out'"},
    "version": {"type": "integer", "description": "The newest version's number"},
    "version_id": INT, "updated_at": TIME},
    ["id", "name", "channel", "subject", "html", "text", "body", "version"])
TEMPLATE_INPUT = _obj({
    "name": STR, "channel": {**CHANNEL, "description": "Required on create; cannot change"},
    "subject": STR, "html": STR, "text": STR, "body": STR, "from_name": STR, "reply_to": STR,
    "append_stop": BOOL})
VERSION = _obj({"id": INT, "template_id": INT, "version": INT, "subject": STR, "html": STR,
                "text": STR, "body": STR, "from_name": STR, "reply_to": NULLSTR,
                "append_stop": BOOL, "created_by_id": NULLINT, "created_at": TIME})
PREVIEW = {"oneOf": [
    _obj({"subject": STR, "html": STR, "text": STR, "version": INT, "contact_id": NULLINT},
         ["subject", "html", "text"]),
    _obj({"body": STR, "segments": INT, "encoding": {"type": "string",
                                                       "enum": ["GSM-7", "UCS-2"]},
          "characters": INT, "version": INT, "contact_id": NULLINT},
         ["body", "segments", "encoding"])]}

WINDOW = {"type": ["object", "null"], "description": "In each recipient's time zone",
          "properties": {"start": {"type": "string", "example": "10:00"},
                         "end": {"type": "string", "example": "12:00"}}}
STATUS = {"type": "string", "enum": ["draft", "scheduled", "preparing", "sending", "paused",
                                     "done", "canceled"]}
COUNTS = _obj({k: INT for k in ("total", "queued", "sending", "sent", "delivered", "bounced",
                                "failed", "unknown", "canceled")},
              ["total", "queued", "sending", "sent", "delivered", "bounced", "failed",
               "unknown"])
BLAST = _obj({
    "id": INT, "name": STR, "channel": CHANNEL, "template_id": INT,
    "template_version_id": {"type": ["integer", "null"],
                            "description": "The exact version, frozen at launch"},
    "list_ids": IDS, "segment_id": NULLINT, "exclude_list_ids": IDS, "send_at": NULLTIME,
    "window": WINDOW, "throttle_per_minute": NULLINT, "status": STATUS,
    "status_reason": NULLSTR, "counts": COUNTS, "created_at": TIME, "launched_at": NULLTIME,
    "finished_at": NULLTIME}, ["id", "status", "counts"])
BLAST_INPUT = _obj({
    "name": STR, "channel": CHANNEL, "template_id": INT, "list_ids": IDS,
    "segment_id": NULLINT, "exclude_list_ids": IDS,
    "send_at": {**NULLTIME, "description": "ISO 8601; without a zone, UTC"},
    "window": WINDOW, "throttle_per_minute": NULLINT})

TAG_T, TAG_B = ["templates"], ["blasts"]

add_path("/templates", "get", {
    "summary": "List templates, newest first", "tags": TAG_T,
    "parameters": [*PAGING, _param("channel", "email or sms")],
    "responses": {"200": _json(_page(TEMPLATE)), **error_responses(401, 422)}})
add_path("/templates", "post", {
    "summary": "Create a template, version 1 (organizer)", "tags": TAG_T,
    "requestBody": _body(TEMPLATE_INPUT),
    "responses": {"201": _json(TEMPLATE, "Created"), **error_responses(401, 403, 409, 422)}})
add_path("/templates/{template_id}", "get", {
    "summary": "A template with its newest version", "tags": TAG_T, "parameters": TEMPLATE_ID,
    "responses": {"200": _json(TEMPLATE), **error_responses(401, 404)}})
for _method in ("put", "patch"):
    add_path("/templates/{template_id}", _method, {
        "summary": "Save a new version; fields left out keep their values (organizer)",
        "tags": TAG_T, "parameters": TEMPLATE_ID, "requestBody": _body(TEMPLATE_INPUT),
        "responses": {"200": _json(TEMPLATE), **error_responses(401, 403, 404, 409, 422)}})
add_path("/templates/{template_id}", "delete", {
    "summary": "Delete a template and its versions; 409 if a blast uses it (organizer)",
    "tags": TAG_T, "parameters": TEMPLATE_ID,
    "responses": {"204": {"description": "Deleted"}, **error_responses(401, 403, 404, 409)}})
add_path("/templates/{template_id}/versions", "get", {
    "summary": "A template's saved versions, newest first", "tags": TAG_T,
    "parameters": [*TEMPLATE_ID, *PAGING],
    "responses": {"200": _json(_page(VERSION)), **error_responses(401, 404, 422)}})
add_path("/templates/{template_id}/versions/{number}", "get", {
    "summary": "One saved version by its number", "tags": TAG_T,
    "parameters": [*TEMPLATE_ID, _param("number", "Version number", "integer", "path")],
    "responses": {"200": _json(VERSION), **error_responses(401, 404)}})
add_path("/templates/{template_id}/preview", "post", {
    "summary": "The newest version rendered for a contact (a sample contact by default)",
    "tags": TAG_T, "parameters": TEMPLATE_ID,
    "requestBody": _body(_obj({"contact_id": NULLINT}), required=False),
    "responses": {"200": _json(PREVIEW), **error_responses(401, 404, 422)}})
add_path("/templates/{template_id}/test", "post", {
    "summary": "Send the newest version, rendered for a contact, to a test address (organizer)",
    "tags": TAG_T, "parameters": TEMPLATE_ID,
    "requestBody": _body(_obj({"to": STR, "contact_id": NULLINT}, ["to"])),
    "responses": {"202": _json(_obj({"job_id": STR, "status": STR}), "Queued"),
                  **error_responses(401, 403, 404, 422)}})

add_path("/blasts", "get", {
    "summary": "List blasts, newest first", "tags": TAG_B,
    "parameters": [*PAGING, _param("status", "Only blasts in this status")],
    "responses": {"200": _json(_page(BLAST)), **error_responses(401, 422)}})
add_path("/blasts", "post", {
    "summary": "Create a draft blast (organizer)", "tags": TAG_B,
    "requestBody": _body(BLAST_INPUT),
    "responses": {"201": _json(BLAST, "Created"), **error_responses(401, 403, 422)}})
add_path("/blasts/{blast_id}", "get", {
    "summary": "A blast with its status and counts", "tags": TAG_B, "parameters": BLAST_ID,
    "responses": {"200": _json(BLAST), **error_responses(401, 404)}})
add_path("/blasts/{blast_id}", "patch", {
    "summary": "Change a draft or scheduled blast; 409 otherwise (organizer)", "tags": TAG_B,
    "parameters": BLAST_ID, "requestBody": _body(BLAST_INPUT),
    "responses": {"200": _json(BLAST), **error_responses(401, 403, 404, 409, 422)}})
add_path("/blasts/{blast_id}/audience", "get", {
    "summary": "How many contacts the blast would reach if launched now", "tags": TAG_B,
    "parameters": BLAST_ID,
    "responses": {"200": _json(_obj({"count": INT}, ["count"])), **error_responses(401, 404)}})
_ACTIONS = {
    "launch": "Launch a draft now, or schedule it for its send_at",
    "pause": "Pause a scheduled, preparing or sending blast; optional body {\"reason\"}",
    "resume": "Resume a paused blast where it stopped",
    "cancel": "Cancel a blast for good; messages not yet sent are canceled",
}
for _action, _summary in _ACTIONS.items():
    _operation: dict[str, Any] = {
        "summary": f"{_summary} (organizer)", "tags": TAG_B, "parameters": BLAST_ID,
        "responses": {"202": _json(BLAST, "Accepted"),
                      **error_responses(401, 403, 404, 409, 422)}}
    if _action == "pause":
        _operation["requestBody"] = _body(_obj({"reason": STR}), required=False)
    add_path(f"/blasts/{{blast_id}}/{_action}", "post", _operation)
