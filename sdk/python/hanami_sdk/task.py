"""Tasks: train and request runs over datasets, processed one after another per cluster."""

from __future__ import annotations

from typing import Mapping

from . import hanami_request
from .hanami_request import Verify

_PATH = "/v1.0alpha/task"


def _as_sent(mapping: Mapping[str, str]) -> object:
    """A mapping as a JSON object; anything else as it is, for the server to refuse with a
    ``BadRequestException`` that names the field (rather than a local error of ``dict()``)."""
    return dict(mapping) if isinstance(mapping, Mapping) else mapping


def create_train_task(token: str, address: str, name: str, cluster_uuid: str,
                      inputs: Mapping[str, str], outputs: Mapping[str, str],
                      verify_connection: Verify = True) -> str:
    """Queues a train task; returns the task object as JSON text (``uuid``, ``name``,
    ``state`` = ``queued``, ``current_cycle``, ``total_number_of_cycles``, timestamps).

    ``inputs`` maps input names of the cluster to dataset uuids, ``outputs`` maps output
    names to the dataset uuids holding the expected values; each name must also be a column
    group of its dataset (MNIST: ``picture`` and ``label``). Raises ``NotFoundException`` for
    an unknown cluster, dataset or name, ``ConflictException`` for the uuid of an unfinished
    upload, ``BadRequestException`` for mismatched sizes or maps that are no maps of strings.
    """
    body = {"name": name, "cluster_uuid": cluster_uuid, "inputs": _as_sent(inputs),
            "outputs": _as_sent(outputs)}
    return hanami_request.send_post_request(token, address, _PATH + "/train", body,
                                            verify_connection)


def create_request_task(token: str, address: str, name: str, cluster_uuid: str,
                        inputs: Mapping[str, str], results: Mapping[str, str],
                        verify_connection: Verify = True) -> str:
    """Queues a request task; returns the task object as JSON text.

    ``inputs`` maps input names to dataset uuids; ``results`` maps one output name to the
    **name** of the dataset that receives the results. That dataset gets the task's uuid and
    appears when the task has finished; deleting the task keeps it.
    """
    body = {"name": name, "cluster_uuid": cluster_uuid, "inputs": _as_sent(inputs),
            "results": _as_sent(results)}
    return hanami_request.send_post_request(token, address, _PATH + "/request", body,
                                            verify_connection)


def get_task(token: str, address: str, task_uuid: str, cluster_uuid: str,
             verify_connection: Verify = True) -> str:
    """Returns a task as JSON text with its live ``state`` (``queued``, ``active``,
    ``aborted``, ``finished``), ``current_cycle`` and ``total_number_of_cycles``.
    ``NotFoundException`` for an unknown cluster or task."""
    values = {"uuid": task_uuid, "cluster_uuid": cluster_uuid}
    return hanami_request.send_get_request(token, address, _PATH, values, verify_connection)


def list_tasks(token: str, address: str, cluster_uuid: str,
               verify_connection: Verify = True) -> str:
    """Lists the tasks of a cluster as JSON text ``{"header", "body"}``
    (columns ``uuid, state, percentage, queued, start, end``; all cells strings)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all",
                                           {"cluster_uuid": cluster_uuid}, verify_connection)


def delete_task(token: str, address: str, task_uuid: str, cluster_uuid: str,
                verify_connection: Verify = True) -> str:
    """Deletes a task (a running one stops at its next row); returns ``{}``.
    ``NotFoundException`` for an unknown cluster or task."""
    values = {"uuid": task_uuid, "cluster_uuid": cluster_uuid}
    return hanami_request.send_delete_request(token, address, _PATH, values,
                                              verify_connection)
