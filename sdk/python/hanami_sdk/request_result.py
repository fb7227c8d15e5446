"""Compatibility module for the seed documentation's ``request_result`` functions.

Request results are datasets now: a request task writes its results into a new dataset
whose uuid is the task's uuid. These functions map onto the dataset endpoints.
"""

from __future__ import annotations

from . import dataset
from .hanami_request import Verify


def check_against_dataset(token: str, address: str, task_uuid: str,
                          request_dataset_uuid: str, verify_connection: Verify = True) -> str:
    """Compares the result of a request task with the labels of the dataset it ran on.

    ``task_uuid`` is the request task's uuid (= its result dataset), ``request_dataset_uuid``
    the reference dataset. Returns JSON text ``{"accuracy": <percent>}``. Same as
    ``dataset.check_mnist_dataset(token, address, request_dataset_uuid, task_uuid)``.
    """
    return dataset.check_mnist_dataset(token, address, request_dataset_uuid, task_uuid,
                                       verify_connection)


def get_request_result(token: str, address: str, request_result_uuid: str,
                       verify_connection: Verify = True) -> str:
    """Returns the result dataset of a request task (its uuid is the task's uuid)."""
    return dataset.get_dataset(token, address, request_result_uuid, verify_connection)


def list_request_results(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists the visible datasets, which include the request results."""
    return dataset.list_datasets(token, address, verify_connection)


def delete_request_result(token: str, address: str, request_result_uuid: str,
                          verify_connection: Verify = True) -> str:
    """Deletes the result dataset of a request task."""
    return dataset.delete_dataset(token, address, request_result_uuid, verify_connection)
