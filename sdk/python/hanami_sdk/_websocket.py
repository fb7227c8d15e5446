"""Internal websocket helpers: address, TLS settings and the session start message."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from typing import Any, Dict, Optional, Union
from urllib.parse import urlsplit

import requests
import websockets.asyncio.client
import websockets.exceptions
import websockets.protocol

from .hanami_exceptions import (
    ConflictException,
    HanamiException,
    InternalServerErrorException,
    NotFoundException,
    UnauthorizedException,
    exception_for_status,
)
from . import hanami_request
from .hanami_request import Verify, base_url, redirect_message

#: Largest websocket message either way: the server takes no more per message (a direct-IO
#: message beyond it is refused before it is sent), and the SDK takes no more from it.
MAX_MESSAGE_BYTES = 16 << 20
#: Seconds allowed for opening a websocket (TCP, TLS and upgrade): the server may hold an
#: opening until one of the client's other sessions has started, for its ``header_timeout``
#: (30 s by default) at most.
OPEN_TIMEOUT = 60.0

TARGET_FILE_UPLOAD = "file_upload"
TARGET_CLUSTER = "cluster"
#: The server's answer to a chunk of an upload that is gone: cancelled (its dataset
#: deleted), expired or finished.
UPLOAD_GONE = "the upload was cancelled, expired or finished"
#: The same for an upload being made into its dataset (every byte has arrived).
UPLOAD_FINALISING = ("the upload is being finalised: every byte has arrived, and it takes no "
                     "more chunks")
#: The policy's refusal of a session start or a direct-IO step (a 401 in REST answers).
POLICY_DENIED = "Access denied by policy"
#: The start of a refusal for a server failure (as the text of a REST 500).
INTERNAL_ERROR = "Internal server error ("
#: The start of the server's word to a direct-IO session it ends because its cluster left
#: DIRECT mode (a 409 in REST answers, as a session's start in TASK mode is).
LEFT_DIRECT_MODE = "the cluster left DIRECT mode"
#: The server's word to a session it ends because it stops (a 503 in REST answers).
SHUTTING_DOWN = "the server is shutting down"


def shutting_down() -> HanamiException:
    """The exception for a session that the server ended because it stops: what a REST
    call answered so with 503 raises (the upload or session can be tried again once the
    server is back)."""
    return exception_for_status(503, SHUTTING_DOWN)


class _WithoutRedirects(websockets.asyncio.client.connect):
    """An opening that follows no redirect: the session start that follows it holds the
    token (a Hanami server never redirects)."""

    def process_redirect(self, exc: Exception) -> Exception:
        return exc


class DirectIoConnection(websockets.asyncio.client.ClientConnection):
    """The connection of a direct-IO session. Once the session has started, the first
    ``close()`` raises ``HanamiException`` where the server never sent its close: the server
    answers a client's close once it has saved what the session trained, and ends a session
    itself with a close of its own; a connection that ended without one (the server could
    not save, or it stopped or crashed, or the network failed) may have lost the training.

    ``close()`` waits for that answer as long as a REST call waits for its own
    (``hanami_request.REQUEST_TIMEOUT``, as it is at the close); a connection that fails
    otherwise (a server that stopped answering the keepalive pings, say) waits the usual
    ``close_timeout`` of websockets (10 s) for the closing handshake, so that the call on it
    raises soon after the pings went unanswered."""

    #: Set once the server has accepted the session's start; cleared once a close was
    #: reported unanswered.
    session_started = False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection, and waits for the server's answer (see the class)."""
        sent_now = self.protocol.state is websockets.protocol.State.OPEN
        self.close_timeout = hanami_request.REQUEST_TIMEOUT
        await super().close(code, reason)
        if self.session_started and self.protocol.close_rcvd is None:
            self.session_started = False
            what = ("the server did not answer the close of this direct-IO session" if sent_now
                    else "the connection of this direct-IO session ended without the "
                         "server's close (the server stopped or crashed, or the network "
                         "failed)")
            raise HanamiException(
                f"{what}: what the session trained may not be saved (the server's error log "
                f"says why)")

    async def __aexit__(self, exc_type: Optional[type], exc_value: Optional[BaseException],
                        traceback: Any) -> None:
        """Closes the connection at the end of ``async with``; where the block raised, its
        exception goes on, with a note where the close went unanswered."""
        try:
            await super().__aexit__(exc_type, exc_value, traceback)
        except HanamiException as unanswered:
            if exc_value is None:
                raise
            if hasattr(exc_value, "add_note"):  # Python 3.11 and later
                exc_value.add_note(unanswered.message)


def connection(address: str, verify: Verify,
               direct_io: bool = False) -> websockets.asyncio.client.connect:
    """A websocket connection to the server with the SDK's settings (TLS as for REST calls,
    no compression, the message size limit, the opening timeout, no redirects, websockets'
    own 10 s for a closing handshake); await it, or use it with ``async with``.
    ``direct_io``: a :class:`DirectIoConnection` (whose own ``close()`` waits longer)."""
    kind = DirectIoConnection if direct_io else websockets.asyncio.client.ClientConnection
    return _WithoutRedirects(
        websocket_url(address), ssl=ssl_context(address, verify), compression=None,
        max_size=MAX_MESSAGE_BYTES, open_timeout=OPEN_TIMEOUT, create_connection=kind)


async def opened(address: str, verify: Verify,
                 direct_io: bool = False) -> websockets.asyncio.client.ClientConnection:
    """Opens a :func:`connection`. A server that cannot be reached raises what a REST call
    raises for it: ``requests``' ``ConnectionError`` (``ConnectTimeout`` for the opening
    timeout), and ``SSLError`` for a refused certificate, with the REST calls' hint; an
    answer that is no websocket opening :func:`opening_failed`'s exception."""
    try:
        return await connection(address, verify, direct_io)
    except websockets.exceptions.InvalidHandshake as e:
        raise opening_failed(address, e) from e
    except ssl.SSLError as e:
        # pylint: disable-next=protected-access
        hint = hanami_request._connection_hint(base_url(address), e, verify)
        raise requests.exceptions.SSLError(f"{e} ({hint})" if hint else str(e)) from e
    except (TimeoutError, asyncio.TimeoutError) as e:  # the same class from Python 3.11
        raise requests.exceptions.ConnectTimeout(
            f"{websocket_url(address)} did not complete the websocket opening in "
            f"{OPEN_TIMEOUT} s") from e
    except OSError as e:
        raise requests.exceptions.ConnectionError(
            f"cannot reach {websocket_url(address)}: {e}") from e


def websocket_url(address: str) -> str:
    """``ws://host:port/`` for ``http`` addresses and ``wss://host:port/`` for ``https``.

    A path in the address is kept (``ws://host:port/path/``), as for the REST calls: that of
    a proxy serving the server under it (the original SDK dropped it, so its websockets
    missed such a server).
    """
    parts = urlsplit(base_url(address))
    scheme = "wss" if parts.scheme.lower() == "https" else "ws"
    if not parts.netloc:
        raise ValueError(f"not an http(s) address: {address!r}")
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/"


def upgrade_refused(address: str,
                    refused: websockets.exceptions.InvalidStatus) -> HanamiException:
    """The exception for a websocket opening answered with an HTTP status instead of the
    switch: the server's own refusal (a 429 while too many sessions of the client wait for
    their start, a 503 while it stops, a 400) as a REST answer of that status would raise
    it, with its text;
    anything else (a proxy that does not pass websockets on, an address whose path is not
    the server's) :class:`HanamiException` with that status."""
    status = refused.response.status_code
    if 300 <= status < 400:
        return HanamiException(redirect_message(refused.response.headers.get("Location")),
                               status)
    body = refused.response.body or b""
    if status in (400, 429, 503) and body and not body.lstrip().startswith(b"<"):
        return exception_for_status(status, body)
    return HanamiException(
        f"{websocket_url(address)} answered the websocket opening with HTTP {status} instead "
        f"of switching protocols: is the address the server's (a proxy in between must pass "
        f"websockets on)?", status)


def opening_failed(address: str,
                   error: websockets.exceptions.InvalidHandshake) -> HanamiException:
    """The exception for a websocket opening that did not switch protocols: an HTTP status
    as :func:`upgrade_refused` says; a connection closed before any answer, and an answer
    that is no HTTP answer a websocket client takes (a server that is no Hanami server), as
    :class:`HanamiException` in words."""
    if isinstance(error, websockets.exceptions.InvalidStatus):
        return upgrade_refused(address, error)
    if isinstance(error.__cause__, (EOFError, OSError)):
        # Closed before any answer: a server that stops or restarts, more likely than one
        # of another kind.
        return HanamiException(
            f"{websocket_url(address)} closed the connection during the websocket opening "
            f"({error.__cause__}): is the server still running?")
    return HanamiException(
        f"{websocket_url(address)} did not answer the websocket opening as a Hanami server "
        f"does ({error}): is the address the server's (a proxy in between must pass "
        f"websockets on)?")


def ssl_context(address: str, verify: Verify) -> Optional[ssl.SSLContext]:
    """The TLS context for ``wss`` (``None`` for plain ``ws``), checking certificates as
    ``requests`` does for the same ``verify``: ``False`` accepts any certificate, a path
    trusts the certificates of that PEM file, and ``True`` the usual roots, or the file that
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` names."""
    if not address.strip().lower().startswith("https"):
        return None
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, (str, os.PathLike)):
        return _trusting(os.fspath(verify))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return _trusting(bundle) if bundle else ssl.create_default_context()


def _trusting(location: str) -> ssl.SSLContext:
    """A context that trusts the certificates of a PEM file, or of a directory prepared with
    ``c_rehash`` (``requests`` takes both)."""
    if os.path.isdir(location):
        return ssl.create_default_context(capath=location)
    return ssl.create_default_context(cafile=location)


def init_message(token: str, target: str, uuid: str) -> str:
    """The JSON text that starts a session."""
    return json.dumps({"token": token, "target": target, "uuid": uuid})


def parse_init_reply(reply: Union[str, bytes]) -> Dict[str, Any]:
    """Parses the server's JSON answer to the start message."""
    try:
        parsed = json.loads(reply)
    except ValueError as e:
        raise HanamiException(f"invalid websocket session reply: {reply!r}") from e
    if not isinstance(parsed, dict):
        raise HanamiException(f"invalid websocket session reply: {reply!r}")
    return parsed


def session_error(reply: Dict[str, Any]) -> HanamiException:
    """The exception for a refused session start (``{"success": false, "error": ...}``).

    Like the REST answers: a failure of the server is :class:`InternalServerErrorException`,
    an invalid token or a role the policy refuses :class:`UnauthorizedException`, an unknown
    target :class:`NotFoundException`, anything else (e.g. a cluster not in DIRECT mode)
    :class:`ConflictException`.
    """
    error = str(reply.get("error") or "websocket session refused")
    if error.startswith(INTERNAL_ERROR):
        return InternalServerErrorException(error)
    lowered = error.lower()
    if "token" in lowered or error == POLICY_DENIED:
        return UnauthorizedException(error)
    if "not found" in lowered:
        return NotFoundException(error)
    return ConflictException(error)


async def cluster_session(token: str, address: str, cluster_uuid: str,
                          verify: Verify) -> websockets.asyncio.client.ClientConnection:
    """Opens a direct-IO session to a cluster in DIRECT mode; raises the server's refusal
    (:func:`session_error`). The server answers its ``close()`` once it has saved the
    network, which ``close()`` waits for as long as a REST call waits for its answer
    (:class:`DirectIoConnection`)."""
    ws = await opened(address, verify, direct_io=True)
    try:
        await ws.send(init_message(token, TARGET_CLUSTER, cluster_uuid))
        reply = parse_init_reply(await ws.recv())
    except websockets.exceptions.ConnectionClosed as e:
        await ws.close()
        raise HanamiException(f"websocket closed during session start: {e}") from e
    except BaseException:
        await ws.close()
        raise
    if reply.get("success") is not True:
        await ws.close()
        raise session_error(reply)
    if isinstance(ws, DirectIoConnection):
        ws.session_started = True
    return ws
