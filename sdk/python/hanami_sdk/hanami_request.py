"""Internal HTTP helpers shared by the REST modules.

Every helper sends one request to ``address + path`` (``path`` starts with ``/v1.0alpha/``)
with the token in the ``X-Auth-Token`` header and returns the body text of a 200 answer.
Other statuses raise the matching exception of :mod:`hanami_sdk.hanami_exceptions`.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from typing import Any, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import requests
import urllib3

from .hanami_exceptions import BadRequestException, HanamiException, exception_for_status

#: Seconds to wait for the server to answer one request. ``None`` waits for the answer
#: forever, like the original SDK (the connection itself still waits at most
#: ``CONNECT_TIMEOUT``).
REQUEST_TIMEOUT: Optional[float] = 300.0

#: Seconds to wait for a connection to the server (its TCP and TLS handshakes), where
#: ``REQUEST_TIMEOUT`` (or a call's own timeout) is not shorter: an address whose server
#: accepts and then says nothing (not Hanami, or the wrong scheme) raises ``requests``'
#: ``Timeout`` after this (``ConnectTimeout`` where the TLS handshake did not complete),
#: not after ``REQUEST_TIMEOUT``. The websocket sessions of uploads and direct IO wait up
#: to their own opening time (60 s) instead.
CONNECT_TIMEOUT: float = 10.0

QueryValues = Union[str, Mapping[str, Any], Sequence[Tuple[str, Any]], None]
Body = Union[str, bytes, Mapping[str, Any], None]
#: ``verify_connection`` of every function: ``True`` checks the server's certificate against
#: the usual roots, ``False`` accepts any (self-signed test servers), and a path names a PEM
#: file (or a ``c_rehash`` directory) of certificates to trust instead, as ``requests`` takes
#: it, for REST calls and the ``wss://`` sessions of uploads and direct IO alike.
Verify = Union[bool, str, os.PathLike[str]]


def base_url(address: str) -> str:
    """The server address without trailing slashes (``http://host:port``; a path only for
    a server behind a proxy that serves it under that path).

    Raises ``ValueError`` for an address without ``http://`` or ``https://``, with white
    space in it (a stray blank or line break from a file or a variable), without a host,
    with a port outside 1 to 65535, a query, a fragment, or a user or password (as the Rust
    SDK and hanamictl refuse them), ``TypeError`` for one that is no string."""
    if not isinstance(address, str):
        raise TypeError(f"the address must be a str like 'http://127.0.0.1:11418', got "
                        f"{type(address).__name__}")

    def refused(why: str) -> ValueError:
        return ValueError(f"the address must be http://HOST:PORT or https://HOST:PORT{why}, "
                          f"got {address!r}")

    if any(c.isspace() for c in address):
        raise refused(" without spaces")
    if not address.lower().startswith(("http://", "https://")):
        raise ValueError(f"the address must start with http:// or https://, got {address!r}")
    rest = address.split("://", 1)[1].rstrip("/")
    host = rest.split("/", 1)[0]
    if "@" in host:
        raise refused(" without a user or password in it (the SDK logs in with its own)")
    if "?" in rest or "#" in rest:
        raise refused(" without a query or fragment (the SDK adds /v1.0alpha/... itself)")
    name, port = host, None
    if ":" in host and not host.endswith("]"):
        # A port after the last ':' (an IPv6 address keeps its colons inside brackets).
        name, port = host.rsplit(":", 1)
    if not name:
        raise refused("")
    if port is not None and not (port.isascii() and port.isdigit()
                                 and 0 < int(port) < 65536):
        raise refused(" with a port from 1 to 65535")
    return address.rstrip("/")


def checked_verify(verify: Verify) -> Verify:
    """``verify`` as given; a path that names no file or directory raises ``ValueError``,
    also for ``http://`` addresses, which do not use it (so that a string passed in its
    place, such as a user id meant for a keyword argument, is not silently ignored)."""
    if isinstance(verify, (str, os.PathLike)) and not os.path.exists(verify):
        raise ValueError(f"verify_connection must be True, False or the path of a certificate "
                         f"file or directory; {os.fspath(verify)!r} names no such file")
    return verify


def build_query(values: QueryValues) -> str:
    """Builds a query string; mappings and pair lists are percent-encoded, ``None`` values
    are left out, strings are used as given (the original SDK's pre-built form)."""
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    pairs = values.items() if isinstance(values, Mapping) else values
    parts = []
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, (bytes, bytearray)):
            # str() would send the text "b'...'".
            raise TypeError(f"'{key}' must be a str, got {type(value).__name__}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        _check_encodable(key, text)
        parts.append(f"{quote(str(key), safe='')}={quote(text, safe='')}")
    return "&".join(parts)


def _check_encodable(key: Any, value: Any) -> None:
    """Refuses text that UTF-8 cannot encode (a lone surrogate, as some decoders leave in
    place of invalid bytes), by the name of its field, before anything is sent; values that
    are no text pass; lists and mappings are searched, keys included."""
    if isinstance(value, Mapping):
        for inner_key, inner in value.items():
            _check_encodable(key, inner_key)
            _check_encodable(key, inner)
        return
    if isinstance(value, (list, tuple)):
        for inner in value:
            _check_encodable(key, inner)
        return
    if not isinstance(value, str):
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequestException(
            f"'{key}' is no valid text: it holds a lone surrogate ({value[e.start]!r} at "
            f"position {e.start}), which UTF-8 cannot encode; nothing was sent") from None


def _handle_response(response: requests.Response, url: str) -> str:
    if response.is_redirect or 300 <= response.status_code < 400:
        raise HanamiException(redirect_message(response.headers.get("Location")),
                              response.status_code)
    if response.status_code == 200:
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError as e:
            # A Hanami server answers JSON; anything else at this address is another kind
            # of server (or a proxy's page), which a decoding error would not tell.
            raise HanamiException(
                f"the answer of {url.split('?', 1)[0]} is not UTF-8 text: is this the address "
                f"of a Hanami server?", 200) from e
    raise exception_for_status(response.status_code, response.content)


def redirect_message(location: Optional[str]) -> str:
    """What a redirect to ``location`` is reported as: the SDK follows none (a Hanami server
    sends none), since the password and the token would go along."""
    if location:
        return (f"the server redirects to {location}, which a Hanami server does not do: use "
                f"that address instead if you trust it (the SDK does not follow redirects, "
                f"which would take the password and the token along)")
    return ("the server answers with a redirect, which a Hanami server does not send: is the "
            "address that of a Hanami server?")


def _check_token_text(token: str) -> None:
    """Refuses a token that cannot go into a request header, before it is sent: one with a
    line break (left from reading it from a file, say), NUL or another control character
    but tab, a character beyond Latin-1, or white space at its start, which failed inside
    the HTTP library. (Anything else goes to the server, as with the original SDK: it
    ignores white space at the end and refuses the rest that is no token with a 401.)"""
    odd = next((i for i, c in enumerate(token)
                if (c < " " and c != "\t") or c == "\x7f" or c > "\xff"), None)
    if odd is None and token[:1] in (" ", "\t"):
        odd = 0
    if odd is not None:
        raise ValueError(f"the token must be the text that request_token returned; this one "
                         f"has {token[odd]!r} at position {odd}, which no request header can "
                         f"carry (a line break left from reading it from a file, say)")


def send_request(method: str, token: Optional[str], address: str, path: str,
                 body: Body = None, values: QueryValues = None,
                 verify: Verify = True, *, timeout: Optional[float] = None) -> str:
    """Sends one request and returns the body of the 200 answer as text.

    ``body`` (POST/PUT) may be JSON text or a mapping, which is serialized. ``verify=False``
    turns off certificate checks (self-signed HTTPS) and silences urllib3's warning about it.
    ``timeout`` (seconds) replaces ``REQUEST_TIMEOUT`` for this request.
    """
    url = base_url(address) + path
    verify = checked_verify(verify)
    query = build_query(values)
    if query:
        url += "?" + query
    headers = {}
    if token is not None:
        if not isinstance(token, str):
            raise TypeError(f"the token must be the str that request_token returned, got "
                            f"{type(token).__name__}")
        _check_token_text(token)
        headers["X-Auth-Token"] = token
    data: Optional[bytes] = None
    if body is not None:
        if isinstance(body, Mapping):
            body = _json(body)
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        headers["Content-Type"] = "application/json"
    with warnings.catch_warnings():
        if not verify:
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        try:
            # A Hanami server never redirects; following one would send the password and
            # the token (a header of its own, which redirects to another host keep) there.
            read = REQUEST_TIMEOUT if timeout is None else timeout
            connect = CONNECT_TIMEOUT if read is None else min(CONNECT_TIMEOUT, read)
            response = requests.request(method, url, data=data, headers=headers,
                                        verify=verify, allow_redirects=False,
                                        timeout=(connect, read))
        except requests.exceptions.ConnectionError as e:
            hint = _connection_hint(url, e, verify)
            if hint is None:
                raise
            raise type(e)(f"{e} ({hint})", request=e.request, response=e.response) from e
        except requests.exceptions.ReadTimeout as e:
            if not _handshake_timed_out(e):
                raise
            # requests calls it a read timeout, with the connection's limit as its value.
            raise requests.exceptions.ConnectTimeout(
                f"cannot reach {base_url(address)}: no connection within {connect:g} s: the "
                f"TLS handshake did not complete (is this the server's address, with the "
                f"right http:// or https:// scheme?)",
                request=e.request, response=e.response) from e
    return _handle_response(response, url)


def _handshake_timed_out(error: BaseException) -> bool:
    """Whether a ``requests`` timeout came from a TLS handshake that did not complete (its
    cause, Python's ``ssl``, says so), not from an answer that was late."""
    seen: set = set()
    cause: Optional[BaseException] = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        # (`socket.timeout` is `TimeoutError` only from Python 3.10 on.)
        if isinstance(cause, (TimeoutError, socket.timeout)) and "handshake" in str(cause):
            return True
        wrapped = cause.args[0] if cause.args else None
        cause = (cause.__cause__ or cause.__context__
                 or (wrapped if isinstance(wrapped, BaseException) else None))
    return False


def _json(body: Mapping[str, Any]) -> str:
    """The body as JSON text; a value JSON cannot hold (bytes, say), or text that UTF-8
    cannot encode, is refused by the name of its field, which the JSON encoder's own error
    (or the server's) does not give."""
    for key, value in body.items():
        _check_encodable(key, value)
    try:
        return json.dumps(body)
    except TypeError:
        for key, value in body.items():
            try:
                json.dumps(value)
            except TypeError:
                raise TypeError(f"'{key}' must be a str or a number, got "
                                f"{type(value).__name__}") from None
        raise


def _connection_hint(url: str, error: Exception, verify: Verify) -> Optional[str]:
    """A hint for a connection that failed because the address's scheme does not match
    what the server speaks, or because the server's certificate was refused, else
    ``None``."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        if "mismatch" in text:
            return ("the server's certificate does not name the host of the address: it needs "
                    "a subjectAltName for it")
        # Refused for itself, whoever signed it.
        # (OpenSSL does not say which certificate of the chain it was.)
        if "certificate has expired" in text:
            return ("a certificate of the server's chain (or the file given as "
                    "verify_connection) has expired: the server needs a new one")
        if "certificate is not yet valid" in text:
            return ("a certificate of the server's chain (or the file given as "
                    "verify_connection) is not valid yet, or this machine's clock is behind")
        # (OpenSSL 3 says "unsuitable", earlier versions "unsupported".)
        if "certificate purpose" in text:
            return ("a certificate of the server's chain is not for servers (its extended key "
                    "usage leaves out server authentication): the server needs another one")
        if isinstance(verify, (str, os.PathLike)):
            return ("the certificate file given as verify_connection did not sign the "
                    "server's certificate: give the certificate of the CA that issued it, or "
                    "the server's own certificate if it is self-signed")
        return ("the server's certificate is self-signed or issued by a private CA: pass the "
                "path of that certificate (or of its CA's) as verify_connection, or "
                "verify_connection=False for a test server")
    if "NO_CERTIFICATE_OR_CRL_FOUND" in text and isinstance(verify, (str, os.PathLike)):
        return ("the file given as verify_connection holds no PEM certificate: a DER file "
                "(binary) can be converted with `openssl x509 -inform der -in FILE -out "
                "FILE.pem`")
    if url.startswith("http://") and "\\x15\\x03" in text:
        # The server answered the plain request with a TLS alert record.
        return "the server seems to speak HTTPS: use an https:// address"
    if url.startswith("https://") and ("WRONG_VERSION_NUMBER" in text
                                       or "wrong version number" in text
                                       or "record layer failure" in text):
        return "the server seems to speak plain HTTP: use an http:// address"
    return None


def send_post_request(token: Optional[str], address: str, path: str, body: Body,
                      verify: Verify = True) -> str:
    """POST with a JSON body."""
    return send_request("POST", token, address, path, body=body, verify=verify)


def send_put_request(token: Optional[str], address: str, path: str, body: Body,
                     verify: Verify = True) -> str:
    """PUT with a JSON body."""
    return send_request("PUT", token, address, path, body=body, verify=verify)


def send_get_request(token: Optional[str], address: str, path: str, values: QueryValues = None,
                     verify: Verify = True) -> str:
    """GET with query values."""
    return send_request("GET", token, address, path, values=values, verify=verify)


def send_delete_request(token: Optional[str], address: str, path: str,
                        values: QueryValues = None, verify: Verify = True) -> str:
    """DELETE with query values."""
    return send_request("DELETE", token, address, path, values=values, verify=verify)
