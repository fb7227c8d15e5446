"""Status mapping, headers and query encoding of the request helpers, against a stub HTTP
server (the real server never answers 500 or 403 on purpose)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List
from urllib.parse import unquote_to_bytes

import pytest
import requests

from hanami_sdk import hanami_exceptions as hx
from hanami_sdk import cluster, dataset, direct_io, hanami_request, hanami_token, project


class _Stub(BaseHTTPRequestHandler):
    seen: List[dict] = []
    # Websocket clients take HTTP/1.1 answers only.
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Stub.seen.append({"method": self.command, "path": self.path,
                           "headers": dict(self.headers), "body": body})
        # /v1.0alpha/project?id=<status>_<text> answers that status with that text
        # (with <text> = hex:<digits>, with those bytes)
        status, _, payload = unquote_to_bytes(self.path.split("id=", 1)[-1]).partition(b"_")
        code = int(status) if status.isdigit() else 200
        if payload.startswith(b"hex:"):  # bytes that are no text
            payload = bytes.fromhex(payload[4:].decode())
        if self.headers.get("Upgrade", "").lower() == "websocket":  # redirected, see below
            code, payload = 307, b""
        if self.path.startswith("/v1.0alpha/token"):
            code, payload = 200, json.dumps({"token": "stub.token", "id": "x", "name": "x",
                                             "is_admin": True}).encode()
        self.send_response(code)
        if 300 <= code < 400:  # to a path that records whether a client followed
            websocket = self.headers.get("Upgrade", "").lower() == "websocket"
            self.send_header("Location", f"ws://{self.headers['Host']}/followed" if websocket
                             else "/followed")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


def _serving(handler: type) -> Iterator[str]:
    """Serves `handler` on a free loopback port while the fixture lasts; its address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    yield from _serving(_Stub)


@pytest.mark.parametrize("status, cls", [
    (400, hx.BadRequestException),
    (401, hx.UnauthorizedException),
    (404, hx.NotFoundException),
    (409, hx.ConflictException),
])
def test_status_mapping(stub: str, status: int, cls: type) -> None:
    with pytest.raises(cls) as info:
        project.get_project("tok", stub, f"{status}_some message")
    assert type(info.value) is cls
    assert isinstance(info.value, hx.HanamiException)
    assert info.value.message == "some message"
    assert str(info.value) == "some message"
    assert info.value.status_code == status


def test_internal_server_error(stub: str) -> None:
    with pytest.raises(hx.InternalServerErrorException) as info:
        project.get_project("tok", stub, "500_")
    assert str(info.value) == "Server internal error appeared."
    assert info.value.status_code == 500
    with pytest.raises(hx.InternalServerErrorException) as info:
        project.get_project("tok", stub, "500_error id 42")
    assert info.value.message == "error id 42"
    assert "error id 42" in str(info.value)
    # the documented constructor without arguments
    assert str(hx.InternalServerErrorException()) == "Server internal error appeared."


def test_other_status_codes_raise_the_base_class(stub: str) -> None:
    with pytest.raises(hx.HanamiException) as info:
        project.get_project("tok", stub, "403_forbidden")
    assert type(info.value) is hx.HanamiException
    assert info.value.status_code == 403
    assert "forbidden" in str(info.value)


def test_html_pages_and_empty_answers_are_explained(stub: str) -> None:
    """A web server or proxy that is no Hanami server answers with HTML pages: the message
    names the page's title, not its markup; an empty answer of an unexpected status says
    what the status means."""
    page = ("<!DOCTYPE HTML>\n<html><head><title>404 Not\n  Found</title></head><body>"
            + "<p>nothing here</p>" * 100 + "</body></html>")
    with pytest.raises(hx.NotFoundException) as info:
        project.get_project("tok", stub, f"404_{page}")
    assert info.value.message == (
        "the answer is an HTML page titled '404 Not Found', which a Hanami server does not "
        "send: is the address that of a Hanami server?")
    with pytest.raises(hx.BadRequestException) as info:
        project.get_project("tok", stub, "431_")
    assert info.value.status_code == 431
    assert info.value.message == (
        "Request Header Fields Too Large: the request's URL or headers are too large for the "
        "server (is an argument very long?)")
    with pytest.raises(hx.HanamiException) as info:
        project.get_project("tok", stub, "503_")
    assert str(info.value) == "status 503: Service Unavailable"


def test_redirects_are_not_followed(stub: str) -> None:
    """A Hanami server never redirects: following one would send the token (and a login's
    password) wherever it points, so the SDK raises, naming the target."""
    _Stub.seen.clear()
    for status in (301, 302, 307, 308):
        with pytest.raises(hx.HanamiException) as info:
            project.get_project("tok", stub, f"{status}_")
        assert type(info.value) is hx.HanamiException
        assert info.value.status_code == status
        assert str(info.value).startswith(
            "the server redirects to /followed, which a Hanami server does not do")
    assert [r["path"] for r in _Stub.seen if r["path"] == "/followed"] == []
    assert len(_Stub.seen) == 4


def test_redirected_websocket_openings_are_not_followed(stub: str) -> None:
    """Nor a websocket opening's: the session start that would follow holds the token."""
    import asyncio  # pylint: disable=import-outside-toplevel
    from hanami_sdk import cluster  # pylint: disable=import-outside-toplevel

    _Stub.seen.clear()
    with pytest.raises(hx.HanamiException) as info:
        asyncio.run(cluster.switch_to_direct_mode("tok", stub, "c1"))
    host = stub.replace("http://", "")
    assert info.value.status_code == 307
    assert str(info.value).startswith(
        f"the server redirects to ws://{host}/followed, which a Hanami server does not do")
    assert [r for r in _Stub.seen if r["path"] == "/followed"] == []


def test_success_returns_the_body_text(stub: str) -> None:
    assert project.get_project("tok", stub, "200_{\"id\":\"x\"}") == '{"id":"x"}'


def test_an_answer_that_is_no_text_names_the_address(stub: str) -> None:
    with pytest.raises(hx.HanamiException) as info:
        project.get_project("tok", stub, "200_hex:fffe41")
    assert type(info.value) is hx.HanamiException
    assert info.value.status_code == 200
    assert str(info.value) == (f"the answer of {stub}/v1.0alpha/project is not UTF-8 text: "
                               f"is this the address of a Hanami server?")


def test_a_token_keeper_renews_an_expired_token_at_once_and_a_fresh_one_later(
        stub: str) -> None:
    """An upload's token keeper renews a token past its expiry (which the server takes for
    one more second) at the first call, with one ``PUT token`` into the token's project, and
    leaves a fresh token alone."""
    import base64  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    from hanami_sdk._renewal import TokenKeeper  # pylint: disable=import-outside-toplevel

    def token(expiry: float) -> str:
        claims = {"exp": int(expiry), "user": json.dumps({"project_id": "some_proj"})}
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"header.{payload}.signature"

    _Stub.seen.clear()
    fresh = token(time.time() + 3600)
    assert TokenKeeper(fresh, stub, True).current() == fresh
    assert _Stub.seen == []
    late = token(time.time() - 0.5)
    keeper = TokenKeeper(late, stub, True)
    assert keeper.current() == "stub.token"
    assert [(r["method"], r["path"]) for r in _Stub.seen] == [("PUT", "/v1.0alpha/token")]
    assert json.loads(_Stub.seen[0]["body"]) == {"project_id": "some_proj"}
    assert _Stub.seen[0]["headers"]["X-Auth-Token"] == late


def test_headers_query_and_body(stub: str) -> None:
    _Stub.seen.clear()
    project.get_project("the-token", stub + "/", "200_a b&c=d/é")
    request = _Stub.seen[-1]
    assert request["path"] == "/v1.0alpha/project?id=200_a%20b%26c%3Dd%2F%C3%A9"
    assert request["headers"]["X-Auth-Token"] == "the-token"

    project.create_project("the-token", stub, "proj_id", "Project Name")
    request = _Stub.seen[-1]
    assert request["method"] == "POST" and request["path"] == "/v1.0alpha/project"
    assert json.loads(request["body"]) == {"id": "proj_id", "name": "Project Name"}

    assert hanami_token.request_token(stub, "user", "password") == "stub.token"
    request = _Stub.seen[-1]
    assert "X-Auth-Token" not in request["headers"]
    assert json.loads(request["body"]) == {"id": "user", "password": "password"}


def test_internal_helpers(stub: str) -> None:
    _Stub.seen.clear()
    assert hanami_request.send_get_request("t", stub, "/v1.0alpha/project", "id=200_x") == "x"
    assert hanami_request.send_delete_request("t", stub, "/v1.0alpha/project",
                                              [("id", "200_y"), ("skip", None)]) == "y"
    assert _Stub.seen[-1]["path"] == "/v1.0alpha/project?id=200_y"
    assert _Stub.seen[-1]["method"] == "DELETE"
    hanami_request.send_put_request("t", stub, "/v1.0alpha/project", '{"a": 1}')
    assert _Stub.seen[-1]["method"] == "PUT" and _Stub.seen[-1]["body"] == b'{"a": 1}'
    hanami_request.send_post_request("t", stub, "/v1.0alpha/project", {"b": True})
    assert json.loads(_Stub.seen[-1]["body"]) == {"b": True}


class _NotHanami(BaseHTTPRequestHandler):
    """A web server that is no Hanami server: 200 with ``body`` to every request, in
    HTTP/1.0 (which a websocket client does not take as the answer to its opening)."""
    body = b""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(_NotHanami.body)))
        self.end_headers()
        self.wfile.write(_NotHanami.body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def not_hanami() -> Iterator[str]:
    yield from _serving(_NotHanami)


@pytest.mark.parametrize("body", [
    b"<html><head><title>Welcome</title></head><body>It works</body></html>",
    b'{"name": "x"}',
    b'{"uuid": 5, "uuid_input_file": "x"}',
    b"[1, 2]",
    b"",
])
def test_uploads_to_a_server_that_is_no_hanami_server_say_so(not_hanami: str, tmp_path: Path,
                                                             body: bytes) -> None:
    """An upload's start answered with something other than a Hanami server's JSON raises
    the SDK's exception in words (it raised a JSON decoding error, a KeyError or a
    TypeError from inside the SDK)."""
    _NotHanami.body = body
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("a,b\n1,2\n")
    with pytest.raises(hx.HanamiException) as info:
        dataset.upload_csv_files("tok", not_hanami, "data", str(csv_file))
    assert type(info.value) is hx.HanamiException
    assert str(info.value).startswith("unexpected answer to the upload's start, not a Hanami "
                                      "server's: ")
    assert str(info.value).endswith("(is the address that of a Hanami server?)")


def test_an_upload_progress_without_its_state_ends_the_wait(not_hanami: str) -> None:
    """A progress answer without ``complete`` is no Hanami server's: the wait ends with the
    SDK's exception (it polled on until its timeout, by default for ever)."""
    _NotHanami.body = b'{"uuid": "8a1b2c3d-0000-4000-8000-123456789abc"}'
    with pytest.raises(hx.HanamiException) as info:
        dataset.wait_until_upload_complete("tok", not_hanami,
                                           "8a1b2c3d-0000-4000-8000-123456789abc",
                                           poll_interval=0.01, timeout=2)
    assert str(info.value).startswith("unexpected answer to the upload progress")


def test_a_websocket_opening_answered_by_no_hanami_server_says_so(not_hanami: str) -> None:
    """An opening answered with what a websocket client takes for no HTTP answer raises the
    SDK's exception in words (it raised the websockets library's ``InvalidMessage``)."""
    _NotHanami.body = b"<html><body>It works</body></html>"
    with pytest.raises(hx.HanamiException) as info:
        asyncio.run(cluster.switch_to_direct_mode(
            "tok", not_hanami, "8a1b2c3d-0000-4000-8000-123456789abc"))
    assert type(info.value) is hx.HanamiException
    assert "did not answer the websocket opening as a Hanami server does" in str(info.value)


@pytest.mark.parametrize("token, shown", [
    ("stub.token\n", "'\\n' at position 10"),
    (" stub.token", "' ' at position 0"),
    ("\tstub.token", "'\\t' at position 0"),
    ("stub\r\ntoken", "'\\r' at position 4"),
    ("stub\x00token", "'\\x00' at position 4"),
    ("stub.token…", "'…' at position 10"),
])
def test_tokens_with_characters_no_token_has_are_refused_before_sending(
        stub: str, token: str, shown: str) -> None:
    """A token that no header can carry (a line break, NUL, white space at its start, a
    character beyond Latin-1) raises a ValueError that names it, and nothing is sent (it
    raised ``UnicodeEncodeError`` or ``InvalidHeader`` from the HTTP library, or a 400
    without text)."""
    sent = len(_Stub.seen)
    with pytest.raises(ValueError) as info:
        project.get_project(token, stub, "200_x")
    assert str(info.value).startswith("the token must be the text that request_token "
                                      "returned; this one has " + shown)
    assert len(_Stub.seen) == sent


def test_other_text_that_is_no_token_goes_to_the_server(stub: str) -> None:
    """Text that can go into a header is sent as it is (the server answers a token that is
    none with its 401, as for the original SDK)."""
    sent = len(_Stub.seen)
    assert project.get_project("stub token é", stub, "200_x") == "x"
    assert _Stub.seen[sent]["headers"]["X-Auth-Token"] == "stub token é"
    # A tab or a C1 character inside or at the end, which a header can carry, too.
    assert project.get_project("stub.token\t", stub, "200_x") == "x"
    assert project.get_project("stub\x85token", stub, "200_x") == "x"


def test_a_websocket_opening_that_the_server_closes_asks_whether_it_runs() -> None:
    """A connection closed before any answer to the opening (a server that stops) asks
    whether the server still runs, not whether the address is a Hanami server's."""
    import socket  # pylint: disable=import-outside-toplevel
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def close_each() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(4096)
            connection.close()

    threading.Thread(target=close_each, daemon=True).start()
    address = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(hx.HanamiException) as info:
            asyncio.run(direct_io.connect("tok", address,
                                          "8a1b2c3d-0000-4000-8000-123456789abc"))
        assert type(info.value) is hx.HanamiException
        assert str(info.value).endswith(": is the server still running?")
        assert "closed the connection during the websocket opening" in str(info.value)
    finally:
        listener.close()


def test_a_websocket_to_a_server_that_is_not_running_raises_what_rest_calls_raise(
        tmp_path: Path) -> None:
    """Opening a session or an upload's websocket where nothing listens raises ``requests``'
    ``ConnectionError``, as a REST call to that address does (a bare
    ``ConnectionRefusedError`` came through)."""
    import socket  # pylint: disable=import-outside-toplevel
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(requests.exceptions.ConnectionError):
        project.get_project("tok", address, "x")
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        asyncio.run(direct_io.connect("tok", address, "8a1b2c3d-0000-4000-8000-123456789abc"))
    assert f"cannot reach ws://127.0.0.1:{address.rsplit(':', 1)[1]}/" in str(info.value)
    with pytest.raises(requests.exceptions.ConnectionError):
        asyncio.run(dataset.send_data("tok", address, "8a1b2c3d-0000-4000-8000-123456789abc",
                                      "8a1b2c3d-0000-4000-8000-123456789abd", b"x"))
