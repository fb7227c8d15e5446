"""Clusters: create, inspect, delete, checkpoints, host placement and direct-IO mode."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Union

from websockets.asyncio.client import ClientConnection

from . import _websocket, hanami_request
from .hanami_request import Verify

_PATH = "/v1.0alpha/cluster"


def create_cluster(token: str, address: str, name: str, template: Union[str, bytes],
                   verify_connection: Verify = True) -> str:
    """Creates a cluster from a cluster template; returns the cluster object as JSON text
    (``uuid``, ``name``, ``owner_id``, ``project_id``, ``visibility``, ``created_at``).

    ``template`` is the template text (it is sent base64-encoded). An empty template creates
    a cluster without network, ready to receive a checkpoint. Raises
    ``BadRequestException`` for an invalid template or name, ``ConflictException`` if the
    name is taken.
    """
    if isinstance(template, str):
        raw = template.encode("utf-8")
    elif isinstance(template, (bytes, bytearray, memoryview)):
        raw = bytes(template)
    else:  # bytes(123) would send 123 zero bytes
        raise TypeError(f"the template must be its text (str or bytes), got "
                        f"{type(template).__name__}")
    body = {"name": name, "template": base64.b64encode(raw).decode("ascii")}
    return hanami_request.send_post_request(token, address, _PATH, body, verify_connection)


def save_cluster(token: str, address: str, name: str, cluster_uuid: str,
                 verify_connection: Verify = True) -> str:
    """Saves the cluster's state as a checkpoint named ``name``.

    Returns JSON text ``{"uuid", "name"}``; ``uuid`` is the save task's uuid and also the
    uuid of the checkpoint it creates. ``NotFoundException`` for an unknown cluster.
    """
    body = {"name": name, "cluster_uuid": cluster_uuid}
    return hanami_request.send_post_request(token, address, _PATH + "/save", body,
                                            verify_connection)


def restore_cluster(token: str, address: str, checkpoint_uuid: str, cluster_uuid: str,
                    verify_connection: Verify = True) -> str:
    """Replaces the cluster's network with the state stored in a checkpoint.

    Queues a restore task and returns JSON text ``{"uuid"}`` (the task's uuid).
    ``NotFoundException`` for an unknown cluster or checkpoint.
    """
    body = {"checkpoint_uuid": checkpoint_uuid, "cluster_uuid": cluster_uuid}
    return hanami_request.send_post_request(token, address, _PATH + "/load", body,
                                            verify_connection)


def get_cluster(token: str, address: str, cluster_uuid: str,
                verify_connection: Verify = True) -> str:
    """Returns one cluster as JSON text. ``BadRequestException`` for a malformed uuid,
    ``NotFoundException`` for an unknown one."""
    return hanami_request.send_get_request(token, address, _PATH, {"uuid": cluster_uuid},
                                           verify_connection)


def list_clusters(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists the visible clusters as JSON text ``{"header", "body"}``
    (columns ``created_at, uuid, project_id, owner_id, visibility, name``)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all", None,
                                           verify_connection)


def delete_cluster(token: str, address: str, cluster_uuid: str,
                   verify_connection: Verify = True) -> str:
    """Deletes a cluster and its task queue (a queued save then makes no checkpoint, a
    queued request no result dataset); returns ``{}``. Checkpoints and result datasets made
    before stay. ``NotFoundException`` if it does not exist."""
    return hanami_request.send_delete_request(token, address, _PATH, {"uuid": cluster_uuid},
                                              verify_connection)


def switch_host(token: str, address: str, cluster_uuid: str, host_uuid: str,
                verify_connection: Verify = True) -> str:
    """Moves the cluster to another logical host (see ``hosts.list_hosts``); returns the
    cluster object as JSON text. ``NotFoundException`` for an unknown cluster or host."""
    body = {"cluster_uuid": cluster_uuid, "host_uuid": host_uuid}
    return hanami_request.send_put_request(token, address, _PATH + "/switch_host", body,
                                           verify_connection)


def _set_mode(token: str, address: str, cluster_uuid: str, new_state: str,
              verify_connection: Verify) -> str:
    body = {"new_state": new_state, "uuid": cluster_uuid}
    return hanami_request.send_put_request(token, address, _PATH + "/set_mode", body,
                                           verify_connection)


def switch_to_task_mode(token: str, address: str, cluster_uuid: str,
                        verify_connection: Verify = True) -> str:
    """Switches a cluster from DIRECT back to TASK mode; queued tasks start again.

    Returns JSON text (``uuid``, ``name``, ``new_state``, ``created_at``).
    ``ConflictException`` if the cluster is not in DIRECT mode. After a direct-IO session
    that outlived the token, pass a new one (``request_token``): an expired token raises
    ``UnauthorizedException`` and leaves the cluster in DIRECT mode.
    """
    return _set_mode(token, address, cluster_uuid, "TASK", verify_connection)


async def _outlast_cancellations(future: "asyncio.Future[object]") -> None:
    """Waits for ``future`` to end, through any number of cancellations of the caller (its
    outcome stays in the future)."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(future)


async def switch_to_direct_mode(token: str, address: str, cluster_uuid: str,
                                verify_connection: Verify = True) -> ClientConnection:
    """Switches a cluster to DIRECT mode and opens a direct-IO websocket to it.

    Returns the open connection for :mod:`hanami_sdk.direct_io`; close it with
    ``await ws.close()`` and call :func:`switch_to_task_mode` afterwards. The connection is
    not bound to the token's expiry. Further connections to the cluster, for samples sent in
    parallel, come from :func:`hanami_sdk.direct_io.connect`.

    Raises ``ConflictException`` if the cluster is busy with a task, already in DIRECT
    mode, or has no network yet (nothing to drive), ``NotFoundException`` for an unknown
    cluster. If the websocket session is refused after the switch (e.g. the token expired
    in between, or the cluster was deleted), the cluster is switched back to TASK mode and
    the refusal is raised (the original SDK returned ``None`` and left the cluster in
    DIRECT mode).
    """
    switching = asyncio.ensure_future(asyncio.to_thread(
        _set_mode, token, address, cluster_uuid, "DIRECT", verify_connection))
    try:
        await asyncio.shield(switching)
    except asyncio.CancelledError:
        # The request runs on in its thread: wait for it (through further cancellations,
        # a second Ctrl-C say), and undo a switch that happened, so that a cancelled call
        # leaves the cluster in TASK mode.
        await _outlast_cancellations(switching)
        if not switching.cancelled() and switching.exception() is None:
            await _back_to_task_mode(token, address, cluster_uuid, verify_connection)
        raise
    try:
        return await _websocket.cluster_session(token, address, cluster_uuid,
                                                verify_connection)
    except BaseException:
        await _back_to_task_mode(token, address, cluster_uuid, verify_connection)
        raise


async def _back_to_task_mode(token: str, address: str, cluster_uuid: str,
                             verify_connection: Verify) -> None:
    """Undoes a switch to DIRECT mode, through further cancellations too (the switch back
    runs in a thread and would otherwise be left behind, to land after whatever the caller
    does next)."""
    await _outlast_cancellations(asyncio.ensure_future(asyncio.to_thread(
        _set_mode, token, address, cluster_uuid, "TASK", verify_connection)))
