"""The OpenAPI document as the server really answers: who may call each operation (an API token, an
integration key, or anyone), the error shapes each route answers with, and the request bodies of the intake
routes, which read their bodies themselves (``alerts.fastpath``), so that FastAPI does not know them.

Only the document changes here: nothing in this module runs on a request but ``GET /openapi.json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from warroom.alerts.fastpath import HEARTBEAT_SOURCE, intake_source
from warroom.auth.models import IntegrationType, Role
from warroom.deps import Admin, Responder, Viewer
from warroom.errors import UNAVAILABLE_RETRY_AFTER_SECONDS

COMPONENTS = "#/components/schemas/"

# Security schemes.
API_TOKEN = "ApiToken"
KEY_QUERY = "IntegrationKeyQuery"
KEY_BEARER = "IntegrationKeyBearer"
GENIE_KEY = "GenieKey"

# Error shapes.
ERROR = "Error"
ERROR_DETAIL = "ErrorDetail"
PAGERDUTY_ERROR = "PagerDutyError"
OPSGENIE_ERROR = "OpsgenieError"

_SECURITY_SCHEMES: dict[str, Any] = {
    API_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (warroom token create), as Authorization: Bearer <token>. Its role "
        "(viewer, responder, admin) sets what it may do: an operation names the least it takes.",
    },
    KEY_QUERY: {
        "type": "apiKey",
        "in": "query",
        "name": "key",
        "description": "Intake: the key of an integration of the route's type, as ?key=.",
    },
    KEY_BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "Intake: the key of an integration of the route's type, as Authorization: Bearer "
        "<key> (not an API token). Sent both ways, the two must be the same key.",
    },
    GENIE_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Opsgenie-shaped routes: Authorization: GenieKey <key of an opsgenie integration>.",
    },
}


_ERROR_SCHEMAS: dict[str, Any] = {
    ERROR: {
        "title": ERROR,
        "type": "object",
        "description": "Every error Warroom answers in its own shape.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Stable, for programs: not_found, invalid, invalid_payload, conflict, "
                        "invalid_transition, unauthorized, forbidden, payload_too_large, "
                        "unsupported_media_type, rate_limited, database_unavailable, wrong_schema, "
                        "uri_too_long, headers_too_large, request_timeout, …",
                        "examples": ["not_found"],
                    },
                    "message": {
                        "type": "string",
                        "description": "For people: what went wrong and what to do.",
                    },
                    "details": {
                        "anyOf": [
                            {"type": "array", "items": {"$ref": COMPONENTS + ERROR_DETAIL}},
                            {"type": "null"},
                        ],
                        "description": "null, or a list of what is at fault: for invalid input one entry per "
                        "field at fault, each {field, message[, allowed]}.",
                    },
                },
            }
        },
    },
    ERROR_DETAIL: {
        "title": ERROR_DETAIL,
        "type": "object",
        "description": "One thing at fault in a request. An entry may say more than these (given values, "
        "the location and line of an org file's problem, the state an incident is in).",
        "required": ["message"],
        "properties": {
            "field": {
                "type": "string",
                "description": "The field at fault: a body field (dotted path), a query or path parameter, "
                "or a header. Absent when the entry is about no one field.",
                "examples": ["severity"],
            },
            "index": {
                "type": "integer",
                "description": "For a query parameter given several times (?status=a&status=b), which of its "
                "values is at fault, from 0.",
            },
            "message": {"type": "string", "description": "What is wrong with it."},
            "allowed": {"type": "array", "items": {}, "description": "The values it may take."},
        },
        "additionalProperties": True,
    },
    PAGERDUTY_ERROR: {
        "title": PAGERDUTY_ERROR,
        "type": "object",
        "description": "PagerDuty's error shape, answered on the PagerDuty-shaped routes.",
        "required": ["status", "message", "errors"],
        "properties": {
            "status": {"type": "string", "examples": ["invalid event"]},
            "message": {"type": "string", "examples": ["Event object is invalid"]},
            "errors": {"type": "array", "items": {"type": "string"}},
        },
    },
    OPSGENIE_ERROR: {
        "title": OPSGENIE_ERROR,
        "type": "object",
        "description": "Opsgenie's error shape, answered on the Opsgenie-shaped routes (errors by field on a "
        "422).",
        "required": ["message", "took", "requestId"],
        "properties": {
            "message": {"type": "string"},
            "took": {"type": "number"},
            "requestId": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

# Models named by ``json_body`` (route decorators' ``openapi_extra``), added to the components when the
# document is built: FastAPI adds only the models of the bodies it reads.
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS + name}


def model_ref(model: type[BaseModel]) -> dict[str, str]:
    """A reference to ``model``'s schema, which the document's components will hold."""
    known = _BODY_MODELS.setdefault(model.__name__, model)
    if known is not model:
        raise ValueError(f"two body models are named {model.__name__}: {known!r} and {model!r}")
    return _ref(model.__name__)


def request_body(
    content: dict[str, Any], *, required: bool = True, description: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` declaring the body a route reads itself (``content``: media type to its schema)."""
    body: dict[str, Any] = {
        "required": required,
        "content": {media_type: {"schema": schema} for media_type, schema in content.items()},
    }
    if description is not None:
        body["description"] = description
    return {"requestBody": body}


def json_body(
    *models: type[BaseModel], many: bool = False, required: bool = True, description: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a JSON body itself: one of ``models`` (with ``many``, or a
    non-empty list of the first)."""
    shapes: list[dict[str, Any]] = [model_ref(model) for model in models]
    if many:
        shapes.append({"type": "array", "items": shapes[0], "minItems": 1})
    schema = shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
    return request_body({"application/json": schema}, required=required, description=description)


# --- what an operation may answer: routes that change nothing -------------------------------------------

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_READ_ONLY: set[Callable[..., Any]] = set()


def changes_nothing(endpoint: Endpoint) -> Endpoint:
    """Mark a route (under its ``@router.post``) that only reads, though it is not a GET (a dry run, a
    computation on the body): the document lists no 409 for it. It conflicts with no state, and its reads
    lose no race (no deadlock, no serialization failure)."""
    _READ_ONLY.add(endpoint)
    return endpoint


# --- who may call an operation -------------------------------------------------------------------------

_ROLE_RANK = {Role.viewer: 0, Role.responder: 1, Role.admin: 2}
# The dependency of each of deps' role annotations (``Annotated[Principal, Depends(require_role(...))]``).
_ROLE_OF: dict[Callable[..., Any], Role] = {
    get_args(annotation)[1].dependency: role
    for annotation, role in ((Viewer, Role.viewer), (Responder, Role.responder), (Admin, Role.admin))
}


def route_role(dependant: Dependant) -> Role | None:
    """The least role an API token needs for a route (its ``dependant``); None if it takes no API token."""
    found: Role | None = None
    pending = [dependant]
    while pending:
        dependant = pending.pop()
        role = _ROLE_OF.get(dependant.call) if dependant.call is not None else None
        if role is not None and (found is None or _ROLE_RANK[role] > _ROLE_RANK[found]):
            found = role
        pending.extend(dependant.dependencies)
    return found


_PAGERDUTY_SHAPED = (IntegrationType.pagerduty.value, "change")


def _error_shape(source: str | None) -> str:
    if source == IntegrationType.opsgenie.value:
        return OPSGENIE_ERROR
    if source in _PAGERDUTY_SHAPED:
        return PAGERDUTY_ERROR
    return ERROR


def _security(role: Role | None, source: str | None) -> list[dict[str, list[str]]]:
    if role is not None:
        return [{API_TOKEN: []}]
    if source == IntegrationType.opsgenie.value:
        return [{GENIE_KEY: []}]
    if source is None or source in _PAGERDUTY_SHAPED:
        return []  # public, or the key is in the body (routing_key, service_key)
    return [{KEY_QUERY: []}, {KEY_BEARER: []}]


# --- what an operation may answer ------------------------------------------------------------------------

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}


def _answer(description: str, shape: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(shape)}},
    }
    if retry_after:
        response["headers"] = _RETRY_AFTER
    return response


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _errors(
    method: str, operation: dict[str, Any], role: Role | None, source: str | None, read_only: bool
) -> dict[str, dict[str, Any]]:
    """The error answers of one operation, by status (those a route declares itself are kept)."""
    shape = _error_shape(source)
    has_body = "requestBody" in operation
    has_path = any(parameter.get("in") == "path" for parameter in operation.get("parameters", []))
    delivery = source is not None and source != HEARTBEAT_SOURCE  # an alert or a change, read by intake
    # A heartbeat's run output is read as it comes, of any size and encoding (``RequestGuardMiddleware``).
    reads_body = has_body and source != HEARTBEAT_SOURCE
    errors: dict[str, dict[str, Any]] = {}
    if "text/html" in operation.get("responses", {}).get("200", {}).get("content", {}):
        # The signed acknowledge link's pages: its refusals are pages too, for the person who tapped it.
        errors["403"] = _page("The link is not valid (it was changed, or not issued here).")
        errors["404"] = _page("The incident of the link no longer exists.")
        errors["409"] = _page("The incident cannot be acknowledged now (it is resolved).")
        errors["410"] = _page("The link expired.")
    if reads_body:
        errors["400"] = _answer(
            "The body could not be read (not JSON, not UTF-8, nested too deep)"
            + (
                ", or does not have the route's shape: details names each field at fault."
                if delivery
                else "."
            ),
            shape,
        )
    elif delivery and method != "DELETE":
        errors["400"] = _answer("The delivery could not be read or has fields at fault.", shape)
    if role is not None:
        errors["401"] = _answer("No API token, or one that is unknown, expired or revoked.", ERROR)
        errors["403"] = _answer(f"The token's role is below {role.value}, which this takes.", ERROR)
    elif source is not None:
        errors["401"] = _answer(
            "No integration key, an unknown or revoked one, one of another integration type, two different "
            "keys, or (a signing integration) a missing or wrong signature.",
            shape,
        )
    if has_path:
        errors.setdefault("404", _answer("Not found: a path parameter names nothing that exists.", shape))
    if method != "GET" and source is None and not read_only:
        errors.setdefault(
            "409",
            _answer(
                "Conflict: the state does not allow it (already acknowledged, resolved, ended, revoked…: the "
                "message says), or a change made at the same moment got in the way (retry).",
                shape,
            ),
        )
    if reads_body:
        group = source in (IntegrationType.alertmanager.value, IntegrationType.grafana.value)
        limit = "max_intake_body_bytes: a whole alert group" if group else "max_body_bytes"
        errors["413"] = _answer(f"The body is over the server's limit ({limit}).", shape)
        errors["415"] = _answer(
            "The body is compressed (Content-Encoding), or not JSON where JSON is read.", shape
        )
    if "422" in operation.get("responses", {}) or source == IntegrationType.opsgenie.value:
        errors["422"] = _answer(
            "Invalid input: details lists {field, message} for each field at fault."
            if shape == ERROR
            else "Invalid input, by field.",
            shape,
        )
    errors["503"] = _answer(
        "The database is unavailable right now (nothing was changed): retry after Retry-After seconds "
        f"({UNAVAILABLE_RETRY_AFTER_SECONDS}). Code wrong_schema: it does not have this Warroom's tables "
        "(dropped, or never upgraded) until warroom db upgrade is run.",
        shape,
        retry_after=True,
    )
    return errors


def _document_operation(dependant: Dependant, path: str, method: str, operation: dict[str, Any]) -> None:
    role = route_role(dependant)
    source = intake_source(method, path)
    operation["security"] = _security(role, source)
    if role is not None:
        required = f"Takes an API token of role {role.value} or above."
        description = operation.get("description")
        operation["description"] = f"{description}\n\n{required}" if description else required
    responses: dict[str, Any] = operation.setdefault("responses", {})
    declared = {status for status in responses if status != "422"}  # FastAPI's own 422 is replaced
    read_only = dependant.call in _READ_ONLY
    for status, response in _errors(method, operation, role, source, read_only).items():
        if status in declared:
            # Declared by the route (its description stays); answered in the route's shape.
            responses[status].setdefault("content", response["content"])
            if "headers" in response:
                responses[status].setdefault("headers", response["headers"])
        else:
            responses[status] = response
    if "429" in responses:
        responses["429"].setdefault("content", _answer("", ERROR)["content"])
        responses["429"].setdefault("headers", _RETRY_AFTER)
    operation["responses"] = dict(sorted(responses.items()))


def _add_components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    # FastAPI's validation error, which no answer has the shape of: every 422 is an Error.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(_ERROR_SCHEMAS)
    if _BODY_MODELS:
        _, definitions = models_json_schema(
            [(model, "validation") for model in _BODY_MODELS.values()],
            ref_template=COMPONENTS + "{model}",
        )
        for name, definition in definitions.get("$defs", {}).items():
            # A model FastAPI documented already (a route's own body) is kept as FastAPI wrote it; one of
            # another shape under the same name would be a different model: refuse it.
            existing = schemas.setdefault(name, definition)
            if _fields(existing) != _fields(definition):
                raise ValueError(f"two models are named {name}: an intake body's and the document's own")
    components["securitySchemes"] = _SECURITY_SCHEMES


def _fields(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(schema.get("properties", {})), sorted(schema.get("required", []))


def complete(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's document of ``app``) with security, error answers and intake bodies."""
    paths: dict[str, Any] = schema.get("paths", {})
    # Each route as the app serves it: included routers' routes with their prefix and dependencies.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        dependant: Dependant = route.dependant or route.original_route.dependant
        for method in sorted(route.methods or ()):
            operation = paths.get(route.path_format or "", {}).get(method.lower())
            if operation is not None:
                _document_operation(dependant, route.path_format or "", method, operation)
    _add_components(schema)
    schema["security"] = [{API_TOKEN: []}]  # the default; each operation says its own
    return schema


def install(app: FastAPI) -> None:
    """Serve ``complete``'s document at /openapi.json (built once, on the first request for it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            app.openapi_schema = None  # set again only once complete, should completing fail
            app.openapi_schema = complete(app, schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
