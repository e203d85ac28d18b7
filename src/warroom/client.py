"""A typed Python client of the Warroom REST API. The CLI's client commands use it; scripts can too."""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from warroom import __version__
from warroom.alerts.schemas import (
    AlertDetail,
    AlertOverview,
    AlertPage,
    ChangePage,
    ChangeRecorded,
    HeartbeatRead,
    IncidentMerged,
    MaintenanceDetail,
    MaintenanceEnded,
    MaintenanceRead,
    NoiseReport,
    RoutingPreview,
)
from warroom.errors import IDEMPOTENCY_HEADER, IDEMPOTENCY_IN_USE_CODE
from warroom.incidents.schemas import (
    TIMELINE_PAGE,
    TIMELINE_PAGE_MAX,
    CommunicationRead,
    IncidentChanged,
    IncidentPage,
    IncidentRead,
    ResponderLeft,
    ResponderRead,
    TimelineEntryRead,
    TimelinePage,
)
from warroom.notify.schemas import DeliveryPage, DeliveryRead
from warroom.oncall.schemas import (
    EscalationPolicyRead,
    IncidentPaging,
    OnCallRead,
    OverrideRead,
    PageRequested,
    ShiftRead,
)
from warroom.orgconfig import ConfigStatus
from warroom.severity.schemas import SeverityRead, SuggestResponse


class ApiError(Exception):
    """A request that got no answer of Warroom's API. ``from_server``: ``code`` and ``message`` are the
    server's own (its JSON error); otherwise this client wrote them, about an answer that was not Warroom's
    or about no answer at all (``status`` 0)."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, from_server: bool = True
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.from_server = from_server


def seg(value: object) -> str:
    """``value`` as one path segment: an id typed as ``../tokens/4#`` names no incident, and reaches no
    other endpoint."""
    text = quote(str(value), safe="")
    if not text.strip():
        raise ApiError(0, "invalid_input", "an empty id names nothing")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


def query(**values: Any) -> dict[str, Any]:
    """Query parameters, leaving out filters that were not given (None, empty)."""
    return {name: value for name, value in values.items() if value not in (None, "", [])}


DEFAULT_URL = "http://127.0.0.1:8080"
# Seconds to wait for an answer. Above the server's own waits for a database lock (30 s by default, then 503:
# WARROOM_SQLITE_BUSY_TIMEOUT, WARROOM_POSTGRES_LOCK_TIMEOUT): a client that gave up first (at 15 s) said a
# write failed that the server went on to make.
DEFAULT_TIMEOUT = 60.0
# A POST that got no answer is sent again, with the same Idempotency-Key, this many times in all.
POST_ATTEMPTS = 2
RETRY_PAUSE = 1.0  # seconds
# How often a retry told that its first one is still finishing (409 idempotency_key_in_use) asks again.
IN_USE_RETRIES = 3
# Connecting is not waiting for the server's work: an address that takes no connection is said sooner.
CONNECT_TIMEOUT = 10.0
MAX_TIMEOUT = 24 * 3600.0
# Methods that change nothing, and the POSTs that do not either (dry runs): no answer to one of these leaves
# nothing in doubt.
READS = frozenset({"GET", "HEAD", "OPTIONS"})
DRY_RUNS = frozenset({"/api/v1/alerts/preview", "/api/v1/severities/suggest"})
# What a network library's message may hold of the Authorization header (h11 quoted a bad header whole).
_BEARER = re.compile(r"Bearer\s+\S+", re.IGNORECASE)

Model = TypeVar("Model", bound=BaseModel)


def timeout_setting() -> float:
    """WARROOM_TIMEOUT: seconds to wait for an answer (default ``DEFAULT_TIMEOUT``)."""
    text = os.environ.get("WARROOM_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:  # NaN fails too
        raise ApiError(
            0,
            "invalid_setting",
            f"WARROOM_TIMEOUT is seconds to wait for an answer, more than 0 and at most {MAX_TIMEOUT:.0f} "
            f"(got {glimpse(text, 40)!r})",
            from_server=False,
        )
    return seconds


# Quote characters a shell or a .env file may leave on a value; no Warroom token has one.
_QUOTES = "\"'"


def checked_token(token: str | None) -> str | None:
    """The token without the whitespace around it (the line end of ``$(cat file)``, the CR of a file written
    on Windows); any other character no token has is refused. The token is never shown: httpx refused a CR
    in the header by quoting the whole header, secret and all."""
    if token is None or not token.strip():
        return None
    token = token.strip()
    if len(token) >= 2 and token[0] in _QUOTES and token[-1] in _QUOTES:
        # docker --env-file (and some .env readers) keep the quotes of WARROOM_TOKEN="wr_…": the server
        # then said the token is not valid, and pointed at revoked tokens.
        raise ApiError(
            0,
            "invalid_setting",
            "WARROOM_TOKEN has quote characters around it, which no Warroom token has (docker --env-file "
            "keeps them): set it without the quotes (the token is not shown)",
            from_server=False,
        )
    if token[0] in _QUOTES or token[-1] in _QUOTES:
        # One quote only: a paste that took the opening quote and not the closing one (or the other way
        # round). No token has one (wr_ and URL-safe base64), so it is said as plainly as the pair is.
        where = "start" if token[0] in _QUOTES else "end"
        raise ApiError(
            0,
            "invalid_setting",
            f"WARROOM_TOKEN has a quote character at its {where}, which no Warroom token has (pasted with "
            "it?): set it without the quote (the token is not shown)",
            from_server=False,
        )
    for position, character in enumerate(token, start=1):
        if "!" <= character <= "~":
            continue
        what = (
            "a control character"
            if unicodedata.category(character) == "Cc"
            else "a space"
            if character.isspace()
            else "a character beyond ASCII"
        )
        raise ApiError(
            0,
            "invalid_setting",
            f"WARROOM_TOKEN has {what} at position {position} of {len(token)}, which no Warroom token has: "
            "check how it is set (the token is not shown)",
            from_server=False,
        )
    return token


# What OpenSSL says when the answer to its handshake is not TLS (a plain-http server): 1.1, then 3.x.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")
# ``scheme://user[:password]@`` at the start of a URL.
_URL_USERINFO = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^/?#@]*@")
_URL_PASSWORD = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://[^/?#@:]*):[^/?#@]*@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&;](?:password|passwd)=)[^&#]*")


def shown_url(url: str) -> str:
    """``url`` as an error may print it: a password in it (``user:pass@``, ``?password=``) as ``***``."""
    return _PASSWORD_PARAM.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", url))


def checked_url(url: str) -> str:
    """``url`` if a request can be sent to it as Warroom's address: http:// or https://, a host, and a port
    (if any) of 1 to 65535; else ApiError naming WARROOM_URL. httpx took a port above 65535 modulo 65536
    (87036 reached 21500, with the token)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError as exc:  # http://[::1
        problem = f"it is not a URL ({exc})"
    else:
        try:
            port = parts.port  # ValueError: not a number, or beyond 65535
        except ValueError:
            port = -1
        if scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not host:
            problem = "it names no host"
        elif port is not None and not 1 <= port <= 65535:
            problem = f"its port {parts.netloc.rpartition(':')[2]!r} is not a number from 1 to 65535"
        else:
            return url
    raise ApiError(
        0,
        "invalid_setting",
        f"WARROOM_URL {shown_url(url)!r} is not the server's address: {problem}; e.g. http://127.0.0.1:8080",
        from_server=False,
    )


def changes_nothing(method: str, path: str) -> bool:
    """Whether a request to ``path`` only reads: repeating it after no answer is safe."""
    return method.upper() in READS or path.split("?")[0] in DRY_RUNS


def glimpse(text: str, limit: int = 80) -> str:
    """The start of ``text`` on one line (runs of whitespace as one space), "…" where it was cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``url`` and ``token`` default to WARROOM_URL and WARROOM_TOKEN; ``timeout`` (seconds to wait for an
        answer) to WARROOM_TIMEOUT, else ``DEFAULT_TIMEOUT``."""
        given = (url or os.environ.get("WARROOM_URL") or "").strip() or DEFAULT_URL
        self.url = given.rstrip("/")
        # What messages name: a password in the URL (``http://admin:pass@host``, ``?password=``) as ``***``.
        self.shown_url = shown_url(self.url)
        # A refused setting is quoted as it was given: with its slashes cut, ``http://`` read as ``'http:'``.
        shown_given = shown_url(given)
        self.token = checked_token(token if token is not None else os.environ.get("WARROOM_TOKEN"))
        self.timeout = timeout if timeout is not None else timeout_setting()
        if _URL_USERINFO.match(self.url):
            # httpx sends a URL's user:password as Basic auth in place of the Bearer token, and the server
            # then said "a token is required" though WARROOM_TOKEN was set.
            raise ApiError(
                0,
                "invalid_setting",
                f"WARROOM_URL {shown_given!r} has a user name or password in it: Warroom takes none "
                "there; give the server's address alone, and the API token in WARROOM_TOKEN",
                from_server=False,
            )
        checked_url(given)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            self._http = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout)),
                transport=transport,
            )
        except httpx.InvalidURL as exc:
            raise ApiError(
                0, "invalid_setting", f"WARROOM_URL {shown_given!r} is not a URL: {exc}", from_server=False
            ) from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, content: bytes | None = None
    ) -> Any:
        """The JSON of Warroom's answer; ApiError for an error, for an answer that is not Warroom's, or for
        none (``code`` ``unreachable``: nothing was sent; ``no_answer``: it was sent, and a write may have
        been made)."""
        # A POST carries a key of its own (``auth.idempotency``), so sending it again after no answer is
        # safe: the server does it at most once and answers the retry with the first one's answer.
        keyed = method.upper() == "POST"
        headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex} if keyed else None
        attempts = POST_ATTEMPTS if keyed else 1
        no_answer: ApiError | None = None
        attempt = in_use = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, path, json=json, params=params, content=content, headers=headers
                )
            except (
                httpx.ConnectError,
                httpx.ConnectTimeout,
                httpx.PoolTimeout,
                httpx.UnsupportedProtocol,
            ) as exc:
                if no_answer is not None:  # the first was sent: its outcome is still unknown
                    raise no_answer from exc
                said = f"cannot reach {self.shown_url}: {self._unsaid(exc)}"
                if self.url.lower().startswith("https://") and any(
                    sign in str(exc).upper() for sign in _NOT_TLS
                ):
                    # The TLS handshake got an answer that is not TLS: a plain-http server at that address.
                    plain = "http://" + self.shown_url[len("https://") :]
                    said += f"; the server may speak plain http: try WARROOM_URL={plain}"
                raise ApiError(0, "unreachable", said, from_server=False) from exc
            except httpx.LocalProtocolError as exc:
                raise ApiError(
                    0,
                    "unreachable",
                    f"could not send to {self.shown_url}: {self._unsaid(exc)}",
                    from_server=False,
                ) from exc
            except httpx.HTTPError as exc:
                # Sent (or being sent): the server may be working on it still, or have done it.
                no_answer = self._no_answer(method, path, exc, retried=attempt > 1)
                if attempt < attempts:
                    time.sleep(RETRY_PAUSE)
                    continue
                raise no_answer from exc
            if keyed and response.status_code == 409 and _error_code(response) == IDEMPOTENCY_IN_USE_CODE:
                # Only a retry meets it: the first one, made, was still finishing while this ran. Its answer
                # comes on a later try; if it never does, the change was made all the same.
                in_use += 1
                if in_use <= IN_USE_RETRIES:
                    time.sleep(RETRY_PAUSE)
                    continue
                raise ApiError(
                    0,
                    "no_answer",
                    f"the server made the change (a retry with its Idempotency-Key found it done), but its "
                    f"answer did not come back: {_error_message(response)}",
                    {"method": method.upper(), "path": path.split("?")[0]},
                    from_server=False,
                )
            break
        if 300 <= response.status_code < 400:
            # The API never redirects what this client asks; a redirect is a wrong URL (http for https).
            raise ApiError(response.status_code, "redirected", self._redirected(response), from_server=False)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = error["code"], error["message"]
                if not isinstance(code, str) or not isinstance(message, str):
                    raise TypeError(code)
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    response.status_code, "http_error", self._foreign_error(response), from_server=False
                ) from None
            raise ApiError(response.status_code, code, message, error.get("details"))
        if not response.content:
            return None
        if not _is_json(response.headers.get("content-type", "")):
            raise self._not_warroom(
                f"{response.status_code} {self._described(response)}", response.status_code
            )
        try:
            return response.json()
        except ValueError:
            raise self._not_warroom(
                f"{response.status_code} {self._described(response)}", response.status_code
            ) from None

    def _unsaid(self, exc: Exception) -> str:
        """``exc``'s message without the token, should the library have quoted it."""
        text = str(exc) or type(exc).__name__
        if self.token:
            text = text.replace(self.token, "[token]")
        return _BEARER.sub("Bearer [token]", text)

    def _no_answer(self, method: str, path: str, exc: httpx.HTTPError, *, retried: bool = False) -> ApiError:
        if isinstance(exc, httpx.TimeoutException):
            said = f"no answer from {self.shown_url} within {self.timeout:g} s (WARROOM_TIMEOUT)"
        else:
            said = f"the connection to {self.shown_url} broke before an answer came ({self._unsaid(exc)})"
        if retried:
            said += f", sent {POST_ATTEMPTS} times with one Idempotency-Key (so made once at most)"
        if not changes_nothing(method, path):
            said += "; the outcome is unknown: the server may have made the change"
        return ApiError(
            0, "no_answer", said, {"method": method.upper(), "path": path.split("?")[0]}, from_server=False
        )

    def _redirected(self, response: httpx.Response) -> str:
        """Where a redirect points, and (an http to https one, another host) what WARROOM_URL should be."""
        status = response.status_code
        location = response.headers.get("location")
        if not location:
            return (
                f"HTTP {status} from {self.shown_url}, a redirect without a Location: is WARROOM_URL right?"
            )
        asked = response.request.url
        try:
            target = asked.join(location).copy_with(query=None, fragment=None)
        except httpx.InvalidURL:
            return (
                f"HTTP {status} from {self.shown_url}, a redirect to {glimpse(location)!r}: "
                "is WARROOM_URL right?"
            )
        base_path = httpx.URL(self.url).path.rstrip("/")
        api_path = asked.path[len(base_path) :] if asked.path.startswith(base_path) else asked.path
        if api_path and target.path.endswith(api_path) and target.scheme in ("http", "https"):
            # The same API path elsewhere: the server is at another address (https, a port, a host).
            moved = target.copy_with(path=target.path[: len(target.path) - len(api_path)] or "/")
            address = str(moved).rstrip("/")
            return f"{self.shown_url} redirects to {address} (HTTP {status}): set WARROOM_URL={address}"
        return (
            f"{self.shown_url} redirects {api_path or '/'} to {target} (HTTP {status}), which is not "
            "Warroom's API (a login page?): is WARROOM_URL the server's address?"
        )

    def _foreign_error(self, response: httpx.Response) -> str:
        """An error answer without Warroom's JSON error: a proxy's, or not Warroom at all."""
        status = response.status_code
        if not response.content.strip():
            return f"HTTP {status} from {self.shown_url} with no Warroom error body (is WARROOM_URL right?)"
        return (
            f"HTTP {status} from {self.shown_url} without a Warroom error ({self._described(response)}): the "
            "answer of a proxy, or of another server (is WARROOM_URL right?)"
        )

    @staticmethod
    def _described(response: httpx.Response) -> str:
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
        return f"{kind}: {glimpse(response.text)!r}" if response.content.strip() else f"{kind}, empty"

    def _not_warroom(self, what: str, status: int = 0, *, or_else: str = "") -> ApiError:
        return ApiError(
            status,
            "not_warroom",
            f"the server at {self.shown_url} answered something that is not Warroom's API ({what}); "
            f"check WARROOM_URL{or_else}",
            from_server=False,
        )

    def _one(self, model: type[Model], data: Any) -> Model:
        """``data`` (an answer's JSON) read as ``model``. JSON of another shape (``{"ok": true}`` from some
        other service) is an ApiError, not a traceback."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the answer"
            raise self._not_warroom(
                f"{glimpse(json.dumps(data), 60)}: {where}: {problem['msg']}",
                or_else=f", or that the server runs Warroom {__version__}, as this CLI does",
            ) from None

    def _rows(self, model: type[Model], data: Any) -> list[Model]:
        if not isinstance(data, list):
            raise self._not_warroom(f"{glimpse(json.dumps(data), 60)}, where a list was due")
        return [self._one(model, row) for row in data]

    # --- the org file ---

    def config_status(self) -> ConfigStatus:
        return self._one(ConfigStatus, self.request("GET", "/api/v1/config"))

    def reload_config(self, *, force: bool = False) -> ConfigStatus:
        """Have the server read its org file again (admin); ApiError 422 with the problems if it has any.
        ``force``: take it even if it empties a section the running one has (services, rules, formats…)."""
        params = {"force": "true"} if force else None
        return self._one(ConfigStatus, self.request("POST", "/api/v1/config/reload", params=params))

    # --- incidents ---

    def list_incidents(
        self,
        *,
        status: list[str] | None = None,
        severity: list[str] | None = None,
        service: str | None = None,
        state: str = "all",
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> IncidentPage:
        params = query(
            state=state,
            limit=limit,
            offset=offset,
            before_id=before_id,
            status=status,
            severity=severity,
            service=service,
        )
        return self._one(IncidentPage, self.request("GET", "/api/v1/incidents", params=params))

    def create_incident(self, **fields: Any) -> IncidentRead:
        return self._one(IncidentRead, self.request("POST", "/api/v1/incidents", json=fields))

    def get_incident(self, ref: str) -> IncidentRead:
        return self._one(IncidentRead, self.request("GET", f"/api/v1/incidents/{seg(ref)}"))

    def update_incident(self, ref: str, **fields: Any) -> IncidentChanged:
        return self._one(IncidentChanged, self.request("PATCH", f"/api/v1/incidents/{seg(ref)}", json=fields))

    def acknowledge(self, ref: str) -> IncidentChanged:
        return self._one(IncidentChanged, self.request("POST", f"/api/v1/incidents/{seg(ref)}/ack"))

    def resolve(self, ref: str, note: str | None = None) -> IncidentChanged:
        body: dict[str, Any] = {"status": "resolved"}
        if note:
            body["note"] = note
        return self._one(IncidentChanged, self.request("PATCH", f"/api/v1/incidents/{seg(ref)}", json=body))

    def timeline(
        self,
        ref: str,
        *,
        limit: int = TIMELINE_PAGE,
        offset: int = 0,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> TimelinePage:
        """A page of the timeline: the newest ``limit`` entries, or with ``after_seq`` those after it
        (``timeline_entries`` reads them all)."""
        params = query(limit=limit, offset=offset, before_seq=before_seq, after_seq=after_seq)
        return self._one(
            TimelinePage, self.request("GET", f"/api/v1/incidents/{seg(ref)}/timeline", params=params)
        )

    def timeline_entries(
        self, ref: str, *, after_seq: int = 0, page: int = TIMELINE_PAGE_MAX
    ) -> Iterator[TimelinePage]:
        """Every entry after ``after_seq`` (0: all), oldest first, a page at a time as they are read: each
        request asks for what follows the last entry seen, so those appended meanwhile come too, once."""
        while True:
            read = self.timeline(ref, limit=page, after_seq=after_seq)
            if read.items:
                yield read
            if len(read.items) >= read.total or not read.items:
                return
            after_seq = read.items[-1].seq

    def log_action(
        self,
        ref: str,
        action: str,
        *,
        impact: str | None = None,
        kind: str = "action",
        system_state: dict[str, Any] | None = None,
    ) -> TimelineEntryRead:
        body = {"action": action, "impact": impact, "kind": kind, "system_state": system_state}
        return self._one(
            TimelineEntryRead, self.request("POST", f"/api/v1/incidents/{seg(ref)}/timeline", json=body)
        )

    def add_responder(self, ref: str, name: str, role: str, contact: str = "") -> ResponderRead:
        body = {"name": name, "role": role, "contact": contact}
        return self._one(
            ResponderRead, self.request("POST", f"/api/v1/incidents/{seg(ref)}/responders", json=body)
        )

    def remove_responder(self, ref: str, responder_id: int) -> ResponderLeft:
        return self._one(
            ResponderLeft,
            self.request("DELETE", f"/api/v1/incidents/{seg(ref)}/responders/{seg(responder_id)}"),
        )

    def send_update(self, ref: str, message: str, audience: str) -> CommunicationRead:
        body = {"message": message, "audience": audience}
        return self._one(
            CommunicationRead, self.request("POST", f"/api/v1/incidents/{seg(ref)}/updates", json=body)
        )

    def updates(self, ref: str) -> list[CommunicationRead]:
        rows = self.request("GET", f"/api/v1/incidents/{seg(ref)}/updates")
        return self._rows(CommunicationRead, rows)

    # --- severities ---

    def severities(self) -> list[SeverityRead]:
        return self._rows(SeverityRead, self.request("GET", "/api/v1/severities"))

    def suggest_severity(
        self, assessment: dict[str, Any], services: list[str] | None = None
    ) -> SuggestResponse:
        body = {"assessment": assessment, "services": services or []}
        return self._one(SuggestResponse, self.request("POST", "/api/v1/severities/suggest", json=body))

    # --- on-call ---

    def who_is_on_call(self, *, schedule: str | None = None, at: str | None = None) -> list[OnCallRead]:
        params = query(schedule=schedule, at=at)
        return self._rows(OnCallRead, self.request("GET", "/api/v1/oncall", params=params))

    def shifts(self, schedule: str, *, count: int = 10, after: str | None = None) -> list[ShiftRead]:
        params = query(count=count, after=after)
        rows = self.request("GET", f"/api/v1/oncall/{seg(schedule)}/shifts", params=params)
        return self._rows(ShiftRead, rows)

    def overrides(self, schedule: str, *, include_past: bool = False) -> list[OverrideRead]:
        rows = self.request(
            "GET", f"/api/v1/oncall/{seg(schedule)}/overrides", params={"include_past": include_past}
        )
        return self._rows(OverrideRead, rows)

    def create_override(
        self, schedule: str, *, person: str, start: str, end: str, reason: str = ""
    ) -> OverrideRead:
        body = {"person": person, "start": start, "end": end, "reason": reason}
        return self._one(
            OverrideRead, self.request("POST", f"/api/v1/oncall/{seg(schedule)}/overrides", json=body)
        )

    def delete_override(self, schedule: str, override_id: int) -> OverrideRead:
        return self._one(
            OverrideRead,
            self.request("DELETE", f"/api/v1/oncall/{seg(schedule)}/overrides/{seg(override_id)}"),
        )

    def escalation_policies(self) -> list[EscalationPolicyRead]:
        rows = self.request("GET", "/api/v1/escalation-policies")
        return self._rows(EscalationPolicyRead, rows)

    def incident_pages(self, ref: str) -> IncidentPaging:
        return self._one(IncidentPaging, self.request("GET", f"/api/v1/incidents/{seg(ref)}/pages"))

    def request_page(
        self, ref: str, *, policy: str | None = None, note: str | None = None, person: str | None = None
    ) -> PageRequested:
        body = {"policy": policy, "note": note} | ({"person": person} if person is not None else {})
        return self._one(
            PageRequested, self.request("POST", f"/api/v1/incidents/{seg(ref)}/pages", json=body)
        )

    # --- notifications ---

    def list_notifications(
        self,
        *,
        status: str | None = None,
        incident: str | None = None,
        channel: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> DeliveryPage:
        params = query(
            limit=limit, offset=offset, before_id=before_id, status=status, incident=incident, channel=channel
        )
        return self._one(DeliveryPage, self.request("GET", "/api/v1/notifications", params=params))

    def get_notification(self, delivery_id: int) -> DeliveryRead:
        return self._one(DeliveryRead, self.request("GET", f"/api/v1/notifications/{seg(delivery_id)}"))

    def send_test_notification(self, channel: str, to: str = "", note: str = "") -> DeliveryRead:
        body = {"channel": channel, "to": to, "note": note}
        return self._one(DeliveryRead, self.request("POST", "/api/v1/notifications/test", json=body))

    def retry_notification(self, delivery_id: int) -> DeliveryRead:
        return self._one(
            DeliveryRead, self.request("POST", f"/api/v1/notifications/{seg(delivery_id)}/retry")
        )

    # --- alerts ---

    def list_alerts(
        self,
        *,
        firing: bool = False,
        unrouted: bool = False,
        snoozed: bool = False,
        status: list[str] | None = None,
        source: list[str] | None = None,
        integration: list[str] | None = None,
        incident: list[str] | None = None,
        service: list[str] | None = None,
        severity: list[str] | None = None,
        labels: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> AlertPage:
        params = query(
            search=search,
            integration=integration,
            service=service,
            severity=severity,
            label=labels,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            before_id=before_id,
            firing="true" if firing else None,
            unrouted="true" if unrouted else None,
            snoozed="true" if snoozed else None,
            status=status,
            source=source,
            incident=incident,
        )
        return self._one(AlertPage, self.request("GET", "/api/v1/alerts", params=params))

    def alert_noise(self, *, since: str | None = None, by: str | None = None, limit: int = 20) -> NoiseReport:
        params = query(since=since, by=by, limit=limit)
        return self._one(NoiseReport, self.request("GET", "/api/v1/alerts/noise", params=params))

    def alert_overview(self, *, since: str | None = None) -> AlertOverview:
        params = query(since=since)
        return self._one(AlertOverview, self.request("GET", "/api/v1/alerts/overview", params=params))

    def get_alert(self, ref: str) -> AlertDetail:
        return self._one(AlertDetail, self.request("GET", f"/api/v1/alerts/{seg(ref)}"))

    def promote_alert(
        self,
        ref: str,
        *,
        title: str | None = None,
        severity: str | None = None,
        move: bool = False,
        force: bool = False,
    ) -> AlertDetail:
        body: dict[str, object] = {
            k: v for k, v in {"title": title, "severity": severity}.items() if v is not None
        }
        if move:
            body["move"] = True
        if force:
            body["force"] = True
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/promote", json=body))

    def merge_incident(self, ref: str, into: str, *, note: str | None = None) -> IncidentMerged:
        body = {"into": into} | ({"note": note} if note is not None else {})
        merged = self.request("POST", f"/api/v1/incidents/{seg(ref)}/merge", json=body)
        return self._one(IncidentMerged, merged)

    def attach_alert(self, ref: str, incident: str) -> AlertDetail:
        body = {"incident": incident}
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/attach", json=body))

    def acknowledge_alert(self, ref: str) -> AlertDetail:
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/acknowledge"))

    def unacknowledge_alert(self, ref: str) -> AlertDetail:
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/unacknowledge"))

    def snooze_alert(self, ref: str, *, duration: str | None = None, until: str | None = None) -> AlertDetail:
        body = {"duration": duration} if duration is not None else {"until": until}
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/snooze", json=body))

    def resolve_alert(self, ref: str, *, note: str | None = None) -> AlertDetail:
        body = {"note": note} if note is not None else {}
        return self._one(AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/resolve", json=body))

    def note_alert(self, ref: str, body: str) -> AlertDetail:
        return self._one(
            AlertDetail, self.request("POST", f"/api/v1/alerts/{seg(ref)}/notes", json={"body": body})
        )

    def edit_alert_note(self, ref: str, note_id: int, body: str) -> AlertDetail:
        return self._one(
            AlertDetail,
            self.request("PATCH", f"/api/v1/alerts/{seg(ref)}/notes/{seg(note_id)}", json={"body": body}),
        )

    def delete_alert_note(self, ref: str, note_id: int) -> AlertDetail:
        return self._one(
            AlertDetail, self.request("DELETE", f"/api/v1/alerts/{seg(ref)}/notes/{seg(note_id)}")
        )

    def preview_alerts(
        self,
        delivery: bytes,
        source: str = "auto",
        integration: int | None = None,
        webhook_format: str | None = None,
    ) -> list[RoutingPreview]:
        """The rules' dry run on one delivery, with what is open on the server now (the open alert among
        ``integration``'s alerts, when given). The server's ``webhook_format`` reads a tool's own JSON."""
        params = query(source=source, integration=integration, webhook_format=webhook_format)
        rows = self.request("POST", "/api/v1/alerts/preview", params=params, content=delivery)
        return self._rows(RoutingPreview, rows)

    def record_change(
        self,
        summary: str,
        *,
        service: str | None = None,
        source: str | None = None,
        happened_at: str | None = None,
        links: list[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> ChangeRecorded:
        """Record a change; ``happened_at`` in ISO 8601 with an offset (default: now)."""
        body = {
            "summary": summary,
            "service": service,
            "source": source,
            "happened_at": happened_at,
            "links": [{"href": href} for href in links or []],
            "details": details or {},
        }
        sent = {name: value for name, value in body.items() if value is not None}
        return self._one(ChangeRecorded, self.request("POST", "/api/v1/changes", json=sent))

    def list_changes(
        self,
        *,
        service: str | None = None,
        since: str | None = None,
        until: str | None = None,
        incident: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> ChangePage:
        params = query(
            service=service,
            since=since,
            until=until,
            incident=incident,
            limit=limit,
            offset=offset,
            before_id=before_id,
        )
        return self._one(ChangePage, self.request("GET", "/api/v1/changes", params=params))

    def list_heartbeats(self) -> list[HeartbeatRead]:
        return self._rows(HeartbeatRead, self.request("GET", "/api/v1/heartbeats"))

    # --- maintenance windows ---

    def list_maintenance(self, *, include_ended: bool = False) -> list[MaintenanceRead]:
        params = query(all="true" if include_ended else None)
        rows = self.request("GET", "/api/v1/maintenance", params=params)
        return self._rows(MaintenanceRead, rows)

    def create_maintenance(self, **fields: Any) -> MaintenanceRead:
        body = {name: value for name, value in fields.items() if value is not None}
        return self._one(MaintenanceRead, self.request("POST", "/api/v1/maintenance", json=body))

    def get_maintenance(self, ref: str) -> MaintenanceDetail:
        return self._one(MaintenanceDetail, self.request("GET", f"/api/v1/maintenance/{seg(ref)}"))

    def extend_maintenance(self, ref: str, by: str) -> MaintenanceRead:
        body = {"by": by}
        return self._one(
            MaintenanceRead, self.request("POST", f"/api/v1/maintenance/{seg(ref)}/extend", json=body)
        )

    def end_maintenance(self, ref: str) -> MaintenanceEnded:
        """End a window now; one already over is answered as it is (``unchanged``)."""
        return self._one(MaintenanceEnded, self.request("POST", f"/api/v1/maintenance/{seg(ref)}/end"))

    def report(
        self,
        description: str,
        *,
        service: str | None = None,
        severity: str = "warning",
        labels: dict[str, str] | None = None,
    ) -> AlertDetail:
        body: dict[str, Any] = {"description": description, "severity": severity, "labels": labels or {}}
        if service:
            body["service"] = service
        return self._one(AlertDetail, self.request("POST", "/api/v1/reports/internal", json=body))


def _error_message(response: httpx.Response) -> str:
    """The ``message`` of an answer in Warroom's error shape, else its status."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    return message if isinstance(message, str) else f"HTTP {response.status_code}"


def _error_code(response: httpx.Response) -> str | None:
    """The ``code`` of an answer in Warroom's error shape, else None."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")
