"""The original SDK test flow (clients.md §5.3) as an acceptance test, on a server of its
own, with generated MNIST-like data instead of the MNIST files.

Every call passes ``False`` as the positional ``verify_connection``, as the original does;
every marked call must raise exactly the named exception.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from hanami_sdk import (
    checkpoint,
    cluster,
    dataset,
    direct_io,
    hanami_exceptions,
    hanami_token,
    hosts,
    project,
    task,
    user,
)

from conftest import Server, start_server
from helpers import ADMIN, ADMIN_PW, SEED_TEMPLATE, pattern_image, pattern_mnist

# the constants of the original test
USER_ID, USER_NAME, USER_PW, IS_ADMIN = "tsugumi", "Tsugumi", "new password", True
PROJECT_ID, PROJECT_NAME = "test_project", "Test Project"
CLUSTER_NAME = "test_cluster"
CHECKPOINT_NAME = "test_checkpoint"
TASK_NAME = "test_task"
TRAIN_DATASET, REQUEST_DATASET = "train_test_dataset", "request_test_dataset"


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("workflow") / "data")
    yield server
    server.stop()


def expect(exception: type, function, *args) -> None:
    """Calls and requires exactly ``exception``."""
    with pytest.raises(exception) as info:
        function(*args)
    assert type(info.value) is exception


def delete_all(token: str, address: str, list_function, delete_function) -> None:
    """The original's clean-up: list, then delete every row by column index 1."""
    for row in json.loads(list_function(token, address, False))["body"]:
        delete_function(token, address, row[1], False)


def poll(token: str, address: str, task_uuid: str, cluster_uuid: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        state = json.loads(task.get_task(token, address, task_uuid, cluster_uuid, False))
        assert {"state", "current_cycle", "total_number_of_cycles"} <= set(state)
        assert 0 <= state["current_cycle"] <= state["total_number_of_cycles"]
        if state["state"] == "finished":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_sdk_api_flow(own_server: Server, tmp_path: Path) -> None:
    address = own_server.url
    train_inputs, train_labels = pattern_mnist(tmp_path, "train", 4000, seed=12345)
    request_inputs, request_labels = pattern_mnist(tmp_path, "t10k", 500, seed=999)

    # 0: login
    token = hanami_token.request_token(address, ADMIN, ADMIN_PW, False)

    # 1: clean-up of earlier runs; the server is fresh, so leave something behind first
    project.create_project(token, address, "leftover", "Leftover", False)
    user.create_user(token, address, "leftover_user", "Leftover", "leftover pw", False, False)
    cluster.create_cluster(token, address, "leftover", SEED_TEMPLATE, False)
    delete_all(token, address, dataset.list_datasets, dataset.delete_dataset)
    delete_all(token, address, checkpoint.list_checkpoints, checkpoint.delete_checkpoint)
    delete_all(token, address, cluster.list_clusters, cluster.delete_cluster)
    delete_all(token, address, project.list_projects, project.delete_project)
    for row in json.loads(user.list_users(token, address, False))["body"]:
        try:
            user.delete_user(token, address, row[1], False)
        except hanami_exceptions.ConflictException:
            pass  # the admin cannot delete himself
    assert [row[1] for row in json.loads(user.list_users(token, address, False))["body"]] \
        == [ADMIN]
    for listing in (project.list_projects, cluster.list_clusters, dataset.list_datasets,
                    checkpoint.list_checkpoints):
        assert json.loads(listing(token, address, False))["body"] == []

    # 2: projects
    project.create_project(token, address, PROJECT_ID, PROJECT_NAME, False)
    expect(hanami_exceptions.ConflictException, project.create_project, token, address,
           PROJECT_ID, PROJECT_NAME, False)
    project.list_projects(token, address, False)
    project.get_project(token, address, PROJECT_ID, False)
    expect(hanami_exceptions.NotFoundException, project.get_project, token, address,
           "fail_project", False)
    project.delete_project(token, address, PROJECT_ID, False)
    expect(hanami_exceptions.NotFoundException, project.delete_project, token, address,
           PROJECT_ID, False)

    # 3: users
    user.create_user(token, address, USER_ID, USER_NAME, USER_PW, IS_ADMIN, False)
    expect(hanami_exceptions.ConflictException, user.create_user, token, address, USER_ID,
           USER_NAME, USER_PW, IS_ADMIN, False)
    user.list_users(token, address, False)
    user.get_user(token, address, USER_ID, False)
    expect(hanami_exceptions.NotFoundException, user.get_user, token, address, "fail_user",
           False)
    user.delete_user(token, address, USER_ID, False)
    expect(hanami_exceptions.NotFoundException, user.delete_user, token, address, USER_ID,
           False)

    # 4: datasets
    dataset_uuid = dataset.upload_mnist_files(token, address, TRAIN_DATASET, train_inputs,
                                              train_labels, False)
    dataset.list_datasets(token, address, False)
    dataset.get_dataset(token, address, dataset_uuid, False)
    expect(hanami_exceptions.BadRequestException, dataset.get_dataset, token, address,
           "fail_dataset", False)
    dataset.delete_dataset(token, address, dataset_uuid, False)
    expect(hanami_exceptions.NotFoundException, dataset.delete_dataset, token, address,
           dataset_uuid, False)

    # 5: clusters
    result = cluster.create_cluster(token, address, CLUSTER_NAME, SEED_TEMPLATE, False)
    cluster_uuid = json.loads(result)["uuid"]
    cluster.list_clusters(token, address, False)
    cluster.get_cluster(token, address, cluster_uuid, False)
    expect(hanami_exceptions.BadRequestException, cluster.get_cluster, token, address,
           "fail_cluster", False)
    cluster.delete_cluster(token, address, cluster_uuid, False)
    expect(hanami_exceptions.NotFoundException, cluster.delete_cluster, token, address,
           cluster_uuid, False)

    # 6: workflow set-up
    result = cluster.create_cluster(token, address, CLUSTER_NAME, SEED_TEMPLATE, False)
    cluster_uuid = json.loads(result)["uuid"]
    train_dataset_uuid = dataset.upload_mnist_files(token, address, TRAIN_DATASET,
                                                    train_inputs, train_labels, False)
    request_dataset_uuid = dataset.upload_mnist_files(token, address, REQUEST_DATASET,
                                                      request_inputs, request_labels, False)
    hosts_body = json.loads(hosts.list_hosts(token, address, False))["body"]
    if len(hosts_body) > 1:
        # (the original picked hosts_body[1][1], the type column; the uuid is column 0)
        cluster.switch_host(token, address, cluster_uuid, hosts_body[1][0], False)

    # 7: train
    result = task.create_train_task(token, address, TASK_NAME, cluster_uuid,
                                    {"picture": train_dataset_uuid},
                                    {"label": train_dataset_uuid}, False)
    task_uuid = json.loads(result)["uuid"]
    finished = poll(token, address, task_uuid, cluster_uuid)
    assert finished["current_cycle"] == finished["total_number_of_cycles"] == 4000
    task.delete_task(token, address, task_uuid, cluster_uuid, False)

    # 8: checkpoint: save, delete the cluster, restore into a new one, delete the checkpoint
    result = cluster.save_cluster(token, address, CHECKPOINT_NAME, cluster_uuid, False)
    checkpoint_uuid = json.loads(result)["uuid"]
    listed = json.loads(checkpoint.list_checkpoints(token, address, False))
    assert [row[1] for row in listed["body"]] == [checkpoint_uuid]
    cluster.delete_cluster(token, address, cluster_uuid, False)
    result = cluster.create_cluster(token, address, CLUSTER_NAME, SEED_TEMPLATE, False)
    cluster_uuid = json.loads(result)["uuid"]
    cluster.restore_cluster(token, address, checkpoint_uuid, cluster_uuid, False)
    checkpoint.delete_checkpoint(token, address, checkpoint_uuid, False)
    expect(hanami_exceptions.NotFoundException, checkpoint.delete_checkpoint, token,
           address, checkpoint_uuid, False)

    # 9: request
    result = task.create_request_task(token, address, TASK_NAME, cluster_uuid,
                                      {"picture": request_dataset_uuid},
                                      {"label": "test_output"}, False)
    request_task_uuid = json.loads(result)["uuid"]
    poll(token, address, request_task_uuid, cluster_uuid)
    listed = json.loads(task.list_tasks(token, address, cluster_uuid, False))
    assert request_task_uuid in [row[0] for row in listed["body"]]
    task.delete_task(token, address, request_task_uuid, cluster_uuid, False)

    # the result dataset is named after the results map and has the task's uuid; the CLI
    # test finds it by listing (uuid in column 1, name in the last column)
    rows = json.loads(dataset.list_datasets(token, address, False))["body"]
    assert [row[1] for row in rows if row[-1] == "test_output"] == [request_task_uuid]

    # 10: accuracy (training, checkpoint, restore, request and result together)
    result = dataset.check_mnist_dataset(token, address, request_dataset_uuid,
                                         request_task_uuid, False)
    accuracy = json.loads(result)["accuracy"]
    assert accuracy > 80.0, accuracy

    # 11: direct IO: 100 train pairs on one sample, then one request
    picture = [float(v) for v in pattern_image(5, 4242)[0]]
    expected = [0.0] * 10
    expected[5] = 1.0

    async def direct() -> list:
        ws = await cluster.switch_to_direct_mode(token, address, cluster_uuid, False)
        for _ in range(100):
            await direct_io.send_train_input(ws, "picture", picture, True, False)
            await direct_io.send_train_input(ws, "label", expected, False, True)
        output_values = await direct_io.send_request_input(ws, "picture", picture, True)
        await ws.close()
        cluster.switch_to_task_mode(token, address, cluster_uuid, False)
        return output_values

    output_values = asyncio.run(direct())
    assert len(output_values) == 10
    assert max(range(10), key=lambda i: output_values[i]) == 5, output_values

    # 12: clean-up (the result dataset stays, as in the original)
    dataset.delete_dataset(token, address, train_dataset_uuid, False)
    dataset.delete_dataset(token, address, request_dataset_uuid, False)
    cluster.delete_cluster(token, address, cluster_uuid, False)
    remaining = json.loads(dataset.list_datasets(token, address, False))["body"]
    assert [row[-1] for row in remaining] == ["test_output"]
