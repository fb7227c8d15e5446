"""Audit log (state-changing requests per user) and error log (admins only)."""

from __future__ import annotations

from typing import Optional

from . import hanami_request
from .hanami_request import Verify


def list_audit_logs(token: str, address: str, user_id: Optional[str] = "", page: int = 0,
                    verify_connection: Verify = True) -> str:
    """Returns one page (100 entries) of an audit log as JSON text ``{"header", "body"}``
    (columns ``created_at, user_id, endpoint, request_type``).

    With an empty ``user_id`` the caller's own log; admins may name another user.
    ``UnauthorizedException`` when a non-admin asks for another user.
    """
    values = {"user_id": user_id or None, "page": _page(page)}
    return hanami_request.send_get_request(token, address, "/v1.0alpha/audit_log", values,
                                           verify_connection)


def list_error_logs(token: str, address: str, user_id: Optional[str] = "", page: int = 0,
                    verify_connection: Verify = True) -> str:
    """Returns one page (100 entries) of the error log as JSON text ``{"header", "body"}``
    (columns ``created_at, user_id, component, context, input_values, message``).

    Admins only (``UnauthorizedException`` otherwise). An empty ``user_id`` lists all
    entries, otherwise only those of that user.
    """
    values = {"user_id": user_id or None, "page": _page(page)}
    return hanami_request.send_get_request(token, address, "/v1.0alpha/error_log", values,
                                           verify_connection)


def _page(page: object) -> int:
    """The page number as an int; what is no whole number is refused by name."""
    if isinstance(page, bool) or not isinstance(page, (int, str)):
        raise TypeError(f"page must be an int, got {type(page).__name__}")
    try:
        return int(page)
    except ValueError:
        raise TypeError(f"page must be an int, got {page!r}") from None
