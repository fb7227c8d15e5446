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
    """The page number as an int (from an int of any kind, numpy's too, a whole float or
    the digits of a str); anything else is refused by name."""
    try:
        number = int(page)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = None
    # int() also takes bytes, and cuts 2.7 to 2.
    whole = isinstance(page, str) or (number is not None and number == page)
    if number is None or isinstance(page, bool) or not whole:
        raise TypeError(f"page must be an int, got {page!r}")
    return number
