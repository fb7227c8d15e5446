"""Checkpoints: saved cluster states (create them with ``cluster.save_cluster``)."""

from __future__ import annotations

from . import hanami_request
from .hanami_request import Verify

_PATH = "/v1.0alpha/checkpoint"


def get_checkpoint(token: str, address: str, checkpoint_uuid: str,
                   verify_connection: Verify = True) -> str:
    """Returns one checkpoint as JSON text (``uuid``, ``name``, ``owner_id``,
    ``project_id``, ``visibility``, ``created_at``). ``NotFoundException`` if unknown.

    (Not in the original Python SDK; the Go SDK and the CLI have it.)
    """
    return hanami_request.send_get_request(token, address, _PATH, {"uuid": checkpoint_uuid},
                                           verify_connection)


def list_checkpoints(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists the visible checkpoints as JSON text ``{"header", "body"}``
    (columns ``created_at, uuid, project_id, owner_id, visibility, name``)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all", None,
                                           verify_connection)


def delete_checkpoint(token: str, address: str, checkpoint_uuid: str,
                      verify_connection: Verify = True) -> str:
    """Deletes a checkpoint; returns ``{}``. ``NotFoundException`` if it does not exist."""
    return hanami_request.send_delete_request(token, address, _PATH,
                                              {"uuid": checkpoint_uuid}, verify_connection)
