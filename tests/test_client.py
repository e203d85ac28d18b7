"""The API client the CLI uses: what it sends is what the person typed, as one id, never another path."""

from __future__ import annotations

import httpx
import pytest

from warroom.client import ApiError, Client


def recording_client(sent: list[httpx.Request], status: int = 404) -> Client:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, json={"error": {"code": "not_found", "message": "no such thing"}})

    return Client("http://warroom.test", "a-token", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (
            lambda c: c.remove_responder("../tokens/4#", 1),
            "/api/v1/incidents/..%2Ftokens%2F4%23/responders/1",
        ),
        (lambda c: c.get_incident(".."), "/api/v1/incidents/%2E%2E"),
        (lambda c: c.get_alert("ALR-1?x=1"), "/api/v1/alerts/ALR-1%3Fx%3D1"),
        (lambda c: c.delete_override("a/b", 3), "/api/v1/oncall/a%2Fb/overrides/3"),
    ],
)
def test_an_id_is_one_path_segment(call: object, path: str) -> None:
    """A typed id such as ``../tokens/4#`` once made ``responder remove`` revoke token 4."""
    sent: list[httpx.Request] = []
    with recording_client(sent) as client, pytest.raises(ApiError) as refused:
        call(client)  # type: ignore[operator]
    assert refused.value.status == 404
    [request] = sent
    assert request.url.raw_path.decode() == path


def test_an_empty_id_is_refused_before_anything_is_sent() -> None:
    sent: list[httpx.Request] = []
    with recording_client(sent) as client, pytest.raises(ApiError) as refused:
        client.get_incident("")
    assert refused.value.message == "an empty id names nothing"
    assert sent == []


def test_a_redirect_is_an_error_not_an_empty_answer() -> None:
    """A proxy in front of the server may redirect (the server itself never does); the client took a 307 for
    an answer."""
    sent: list[httpx.Request] = []
    with recording_client(sent, status=307) as client, pytest.raises(ApiError) as refused:
        client.list_incidents()
    assert refused.value.status == 307
