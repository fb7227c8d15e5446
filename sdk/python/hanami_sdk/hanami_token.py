"""Login: request an access token."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from . import hanami_request
from .hanami_exceptions import HanamiException, UnauthorizedException
from .hanami_request import Verify


def request_token(address: str, user_id: str, pw: str, verify_connection: Verify = True) -> str:
    """Logs in and returns the access token (a JWT string).

    ``POST /v1.0alpha/token`` with ``{"id": user_id, "password": pw}``. The token is sent by
    every other function and expires after the server's configured time.

    Raises ``UnauthorizedException`` for an unknown user, a wrong password or a non-admin
    user without project, ``BadRequestException`` for malformed input.
    """
    body = {"id": user_id, "password": pw}
    try:
        text = hanami_request.send_post_request(None, address, "/v1.0alpha/token", body,
                                                verify_connection)
    except UnauthorizedException as e:
        path = urlsplit(address).path.rstrip("/")
        if not path:
            raise
        # A server answers so to a path it does not know.
        raise UnauthorizedException(
            f"{e.message} (the address has the path {path!r}, which a Hanami server does "
            f"not know: the address is http://HOST:PORT, with a path only behind a proxy "
            f"that serves the server under it)") from e
    try:
        return json.loads(text)["token"]
    except (ValueError, KeyError, TypeError) as e:
        raise HanamiException(f"login answer without token: {text}") from e
