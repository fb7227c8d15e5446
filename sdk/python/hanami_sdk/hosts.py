"""Logical hosts (this server has one: the CPU, with all its cores; clusters live on it)."""

from __future__ import annotations

from . import hanami_request
from .hanami_request import Verify


def list_hosts(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists the logical hosts as JSON text ``{"header": ["uuid", "type"], "body": ...}``;
    ``type`` is ``cpu`` (or ``cuda``)."""
    return hanami_request.send_get_request(token, address, "/v1.0alpha/host/all", None,
                                           verify_connection)
