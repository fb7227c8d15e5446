"""Keeping a long upload's token valid.

The upload helpers take one token and make several calls with it (the upload's start, one
websocket session per file, progress polls, the finalisation). A token that expires
between them broke the upload and left it unfinished on the server, where it blocked
deleting its user and project until the server's ``upload_timeout``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any, Dict, Optional

import requests

from . import hanami_request
from .hanami_exceptions import HanamiException
from .hanami_request import Verify

#: Shortest time between two renewals, in seconds.
_MIN_INTERVAL = 0.25

#: Longest a renewal may take, in seconds (it runs between an upload's chunks, and the
#: server closes a websocket session that answers no ping for 20 s).
_RENEWAL_TIMEOUT = 10.0


def _claims(token: str) -> Dict[str, Any]:
    """The payload of a JWT, or ``{}`` for a token of another form (it is not verified: the
    server does that)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _project_of(claims: Dict[str, Any]) -> Optional[str]:
    """The project the token is bound to: the ``user`` claim holds the caller's context as
    JSON text, on the original server as on Hanami-rs."""
    try:
        project = json.loads(claims["user"])["project_id"]
    except (KeyError, TypeError, ValueError):
        return None
    return project if isinstance(project, str) else None


class TokenKeeper:
    """The token of one long operation: once half of the lifetime it had left when the
    keeper got it has passed, ``current()`` renews it (``PUT token`` into the same project)
    and returns the new one, and so on for each new token; a token past its expiry (which
    the server still takes for a second) is renewed at the first call. Best effort: a token
    whose lifetime or project cannot be read, or that the server does not renew (a policy
    without ``PUT token``, say), is used as it is."""

    def __init__(self, token: str, address: str, verify: Verify) -> None:
        self._token = token
        self._address = address
        self._verify = verify
        self._project = _project_of(_claims(token))
        self._renewed: Optional[float] = None
        self._renew_at = self._halfway()

    def _halfway(self) -> Optional[float]:
        expiry = _claims(self._token).get("exp")
        if self._project is None or not isinstance(expiry, (int, float)):
            return None
        now = time.time()
        due = now + max((expiry - now) / 2, 0.0)
        if self._renewed is not None:
            due = max(due, self._renewed + _MIN_INTERVAL)
        return due

    def current(self) -> str:
        """The token to send now (renewed first if it is due)."""
        if self._renew_at is not None and time.time() >= self._renew_at:
            try:
                answer = json.loads(hanami_request.send_request(
                    "PUT", self._token, self._address, "/v1.0alpha/token",
                    {"project_id": self._project}, verify=self._verify,
                    timeout=_RENEWAL_TIMEOUT))
                self._token = answer["token"]
                self._renewed = time.time()
                self._renew_at = self._halfway()
            except (HanamiException, requests.RequestException, ValueError, KeyError,
                    TypeError):
                self._renew_at = None
        return self._token

    def last(self) -> str:
        """The token as it is, without renewing it (for a quick clean-up)."""
        return self._token
