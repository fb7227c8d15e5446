"""Clusters, hosts, tasks and checkpoints against the real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from hanami_sdk import checkpoint, cluster, dataset, hosts, logs, task
from hanami_sdk import hanami_exceptions as hx

from helpers import ADMIN, SEED_TEMPLATE, pattern_mnist, rows, unique, wait_for_task

MISSING = "8a1b2c3d-0000-4000-8000-123456789abc"


@pytest.fixture(scope="module")
def small_dataset(address: str, token: str, files: Path) -> Iterator[str]:
    """A 100-row MNIST-like dataset."""
    images, labels = pattern_mnist(files, "small", 100)
    uuid = dataset.upload_mnist_files(token, address, unique("small_set"), images, labels)
    yield uuid
    dataset.delete_dataset(token, address, uuid)


@pytest.fixture
def new_cluster(address: str, token: str) -> Iterator[str]:
    """A fresh cluster from the seed template."""
    uuid = json.loads(cluster.create_cluster(token, address, unique("test_cluster"),
                                             SEED_TEMPLATE))["uuid"]
    yield uuid
    try:
        cluster.delete_cluster(token, address, uuid)
    except hx.NotFoundException:
        pass


def test_cluster_lifecycle(address: str, token: str) -> None:
    name = unique("test_cluster")
    created = json.loads(cluster.create_cluster(token, address, name, SEED_TEMPLATE))
    uuid = created["uuid"]
    assert created == {**created, "name": name, "owner_id": ADMIN, "project_id": "admin",
                       "visibility": "private"}
    with pytest.raises(hx.ConflictException):
        cluster.create_cluster(token, address, name, SEED_TEMPLATE)

    assert json.loads(cluster.get_cluster(token, address, uuid)) == created
    with pytest.raises(hx.BadRequestException):
        cluster.get_cluster(token, address, "fail_cluster")
    with pytest.raises(hx.NotFoundException):
        cluster.get_cluster(token, address, MISSING)

    listed = json.loads(cluster.list_clusters(token, address))
    assert listed["header"] == ["created_at", "uuid", "project_id", "owner_id",
                                "visibility", "name"]
    assert [uuid, name] in [[row[1], row[-1]] for row in listed["body"]]

    assert json.loads(cluster.delete_cluster(token, address, uuid)) == {}
    with pytest.raises(hx.NotFoundException):
        cluster.delete_cluster(token, address, uuid)


def test_cluster_template_forms_and_errors(address: str, token: str) -> None:
    uuid = json.loads(cluster.create_cluster(token, address, unique("bytes_template"),
                                             SEED_TEMPLATE.encode()))["uuid"]
    cluster.delete_cluster(token, address, uuid)
    empty = json.loads(cluster.create_cluster(token, address, unique("empty_template"), ""))
    cluster.delete_cluster(token, address, empty["uuid"])
    with pytest.raises(hx.BadRequestException) as info:
        cluster.create_cluster(token, address, unique("broken"), "version: 1\nnonsense\n")
    assert "template" in info.value.message.lower() or "line" in info.value.message


def test_hosts_and_switch_host(address: str, token: str, new_cluster: str) -> None:
    listed = json.loads(hosts.list_hosts(token, address))
    assert listed["header"] == ["uuid", "type"]
    assert listed["body"] and all(row[1] in ("cpu", "cuda") for row in listed["body"])
    host_uuid = listed["body"][0][0]
    moved = json.loads(cluster.switch_host(token, address, new_cluster, host_uuid))
    assert moved["uuid"] == new_cluster
    with pytest.raises(hx.NotFoundException):
        cluster.switch_host(token, address, new_cluster, MISSING)
    with pytest.raises(hx.NotFoundException):
        cluster.switch_host(token, address, MISSING, host_uuid)


def test_mode_switch_errors(address: str, token: str, new_cluster: str) -> None:
    with pytest.raises(hx.ConflictException):
        cluster.switch_to_task_mode(token, address, new_cluster)  # already in TASK mode
    with pytest.raises(hx.NotFoundException):
        cluster.switch_to_task_mode(token, address, MISSING)


def test_train_and_request_tasks(address: str, token: str, small_dataset: str,
                                 new_cluster: str) -> None:
    name = unique("test_task")
    created = json.loads(task.create_train_task(token, address, name, new_cluster,
                                                {"picture": small_dataset},
                                                {"label": small_dataset}))
    assert created["state"] == "queued" and created["name"] == name
    assert created["total_number_of_cycles"] == 100
    done = wait_for_task(token, address, created["uuid"], new_cluster)
    assert done["current_cycle"] == done["total_number_of_cycles"] == 100
    assert done["start_timestamp"] != "-" and done["end_timestamp"] != "-"

    result_name = unique("test_output")
    request = json.loads(task.create_request_task(token, address, unique("request"),
                                                  new_cluster, {"picture": small_dataset},
                                                  {"label": result_name}))
    wait_for_task(token, address, request["uuid"], new_cluster)

    listed = json.loads(task.list_tasks(token, address, new_cluster))
    assert listed["header"] == ["uuid", "state", "percentage", "queued", "start", "end"]
    assert [row[:3] for row in listed["body"]] == [
        [created["uuid"], "finished", "1.000000"], [request["uuid"], "finished", "1.000000"]]

    # the result is a dataset with the task's uuid; deleting the task keeps it
    assert json.loads(task.delete_task(token, address, request["uuid"], new_cluster)) == {}
    with pytest.raises(hx.NotFoundException):
        task.delete_task(token, address, request["uuid"], new_cluster)
    with pytest.raises(hx.NotFoundException):
        task.get_task(token, address, request["uuid"], new_cluster)
    result = json.loads(dataset.get_dataset(token, address, request["uuid"]))
    assert result["name"] == result_name
    assert result["number_of_rows"] == 100 and result["number_of_columns"] == 10
    accuracy = json.loads(dataset.check_mnist_dataset(token, address, small_dataset,
                                                      request["uuid"]))["accuracy"]
    assert 0.0 <= accuracy <= 100.0
    dataset.delete_dataset(token, address, request["uuid"])


def test_task_errors(address: str, token: str, small_dataset: str, new_cluster: str) -> None:
    inputs, outputs = {"picture": small_dataset}, {"label": small_dataset}
    with pytest.raises(hx.NotFoundException):
        task.create_train_task(token, address, "test_task", MISSING, inputs, outputs)
    with pytest.raises(hx.BadRequestException):
        task.create_train_task(token, address, "test_task", "fail_cluster", inputs, outputs)
    with pytest.raises(hx.NotFoundException):
        task.create_train_task(token, address, "test_task", new_cluster,
                               {"picture": MISSING}, outputs)
    with pytest.raises(hx.NotFoundException):
        task.create_train_task(token, address, "test_task", new_cluster,
                               {"unknown_input": small_dataset}, outputs)
    with pytest.raises(hx.BadRequestException):
        task.create_request_task(token, address, "test_task", new_cluster, inputs,
                                 {"label": "result_one", "other": "result_two"})
    # Lists instead of maps reach the server, which names the field.
    with pytest.raises(hx.BadRequestException, match="inputs"):
        task.create_train_task(token, address, "test_task", new_cluster, ["picture"],
                               outputs)
    with pytest.raises(hx.BadRequestException, match="results"):
        task.create_request_task(token, address, "test_task", new_cluster, inputs,
                                 ["label"])
    with pytest.raises(hx.NotFoundException):
        task.get_task(token, address, MISSING, new_cluster)
    with pytest.raises(hx.NotFoundException):
        task.list_tasks(token, address, MISSING)
    # nothing was queued by the failed creations
    assert json.loads(task.list_tasks(token, address, new_cluster))["body"] == []


def test_checkpoint_save_get_list_restore_delete(address: str, token: str,
                                                 small_dataset: str,
                                                 new_cluster: str) -> None:
    train = json.loads(task.create_train_task(token, address, "test_task", new_cluster,
                                              {"picture": small_dataset},
                                              {"label": small_dataset}))
    wait_for_task(token, address, train["uuid"], new_cluster)

    name = unique("test_checkpoint")
    saved = json.loads(cluster.save_cluster(token, address, name, new_cluster))
    assert saved["name"] == name
    checkpoint_uuid = saved["uuid"]
    wait_for_task(token, address, checkpoint_uuid, new_cluster)  # the save task

    info = json.loads(checkpoint.get_checkpoint(token, address, checkpoint_uuid))
    assert info["uuid"] == checkpoint_uuid and info["name"] == name
    listed = json.loads(checkpoint.list_checkpoints(token, address))
    assert listed["header"] == ["created_at", "uuid", "project_id", "owner_id",
                                "visibility", "name"]
    assert [checkpoint_uuid, name] in [[row[1], row[-1]] for row in listed["body"]]

    target = json.loads(cluster.create_cluster(token, address, unique("restore_target"),
                                               ""))["uuid"]
    try:
        restored = json.loads(cluster.restore_cluster(token, address, checkpoint_uuid,
                                                      target))
        wait_for_task(token, address, restored["uuid"], target)
        with pytest.raises(hx.NotFoundException):
            cluster.restore_cluster(token, address, MISSING, target)
        with pytest.raises(hx.NotFoundException):
            cluster.save_cluster(token, address, "test_checkpoint", MISSING)
        # the restored cluster has a network: it can serve a request
        request = json.loads(task.create_request_task(token, address, "request_task", target,
                                                      {"picture": small_dataset},
                                                      {"label": unique("restored_out")}))
        wait_for_task(token, address, request["uuid"], target)
        dataset.delete_dataset(token, address, request["uuid"])
    finally:
        cluster.delete_cluster(token, address, target)

    assert json.loads(checkpoint.delete_checkpoint(token, address, checkpoint_uuid)) == {}
    with pytest.raises(hx.NotFoundException):
        checkpoint.delete_checkpoint(token, address, checkpoint_uuid)
    with pytest.raises(hx.NotFoundException):
        checkpoint.get_checkpoint(token, address, checkpoint_uuid)
    assert checkpoint_uuid not in {row[1] for row in rows(checkpoint.list_checkpoints(
        token, address))}


def test_arguments_of_the_wrong_type_are_named(address: str, token: str) -> None:
    """Wrong types fail with a `TypeError` that says what was expected, before anything is
    sent (an int template used to become that many zero bytes, a None address an
    AttributeError from deep inside)."""
    before = rows(cluster.list_clusters(token, address))
    with pytest.raises(TypeError, match="the template must be its text"):
        cluster.create_cluster(token, address, unique("typed"), 123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the address must be a str"):
        cluster.list_clusters(token, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the token must be the str"):
        cluster.list_clusters(123, address)  # type: ignore[arg-type]
    # Bytes: JSON cannot hold them, and in a query they became the text "b'...'".
    with pytest.raises(TypeError, match="^'name' must be a str or a number, got bytes$"):
        cluster.create_cluster(token, address, b"typed", "")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^'uuid' must be a str, got bytes$"):
        cluster.get_cluster(token, address, b"x")  # type: ignore[arg-type]
    for page in ["x", 2.7, b"1"]:
        with pytest.raises(TypeError, match=f"^page must be an int, got {page!r}$"):
            logs.list_audit_logs(token, address, "", page)  # type: ignore[arg-type]
    for page in ["0", 0.0]:  # what int() took before: digits, whole floats
        assert logs.list_audit_logs(token, address, "", page) == logs.list_audit_logs(
            token, address, "", 0)  # type: ignore[arg-type]
    assert rows(cluster.list_clusters(token, address)) == before
