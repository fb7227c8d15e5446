"""The Python-SDK examples of the user documentation (CLI-SDK-Docu), in its order and with
its variable names and argument orders. Only the documentation's own slips are fixed:
``projet_id`` is ``project_id``, and the unprefixed user functions are imported by name.
The direct-IO examples are in test_direct_io.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hanami_sdk import (
    checkpoint,
    cluster,
    dataset,
    hanami_exceptions,
    hanami_token,
    hosts,
    project,
    request_result,
    task,
    user,
)
from hanami_sdk.user import (
    add_roject_to_user,
    list_projects_of_user,
    remove_project_fromUser,
    switch_project,
)

from helpers import SEED_TEMPLATE, pattern_mnist, unique


def test_documentation_examples(address: str, files: Path) -> None:
    # Request Token
    test_user = "asdf"
    test_pw = "asdfasdf"
    token = hanami_token.request_token(address, test_user, test_pw)

    # Exceptions
    caught = []
    for command in (lambda: project.get_project(token, address, "fail_project"),
                    lambda: project.list_projects("invalid", address),
                    lambda: project.get_project(token, address, "x"),
                    lambda: user.delete_user(token, address, test_user)):
        try:
            command()
        except hanami_exceptions.NotFoundException as e:
            caught.append(("not found", str(e)))
        except hanami_exceptions.UnauthorizedException as e:
            caught.append(("unauthorized", str(e)))
        except hanami_exceptions.BadRequestException as e:
            caught.append(("bad request", str(e)))
        except hanami_exceptions.ConflictException as e:
            caught.append(("conflict", str(e)))
        except hanami_exceptions.InternalServerErrorException:
            caught.append(("internal error", ""))
    assert [kind for kind, _ in caught] == ["not found", "unauthorized", "bad request",
                                            "conflict"]
    assert all(text for _, text in caught)

    # Project
    project_id = unique("test_project")
    project_name = "Test Project"
    result = project.create_project(token, address, project_id, project_name)
    assert json.loads(result) == {**json.loads(result), "creator_id": "asdf",
                                  "id": project_id, "name": "Test Project"}
    result = project.get_project(token, address, project_id)
    assert json.loads(result)["id"] == project_id
    result = project.list_projects(token, address)
    assert {"body", "header"} == set(json.loads(result))

    # User
    new_user = "new_user"
    new_id = unique("new_user")
    new_pw = "asdfasdf"
    is_admin = True
    result = user.create_user(token, address, new_id, new_user, new_pw, is_admin)
    assert json.loads(result) == {**json.loads(result), "creator_id": "asdf", "id": new_id,
                                  "is_admin": True, "name": "new_user", "projects": []}
    user_id = new_id
    result = user.get_user(token, address, user_id)
    assert json.loads(result)["id"] == new_id
    result = user.list_users(token, address)
    assert new_id in [row[1] for row in json.loads(result)["body"]]

    role = "member"
    is_project_admin = True
    result = add_roject_to_user(token,
                                address,
                                user_id,
                                project_id,
                                role,
                                is_project_admin)
    assert json.loads(result)["projects"][0]["project_id"] == project_id
    result = list_projects_of_user(token, address)
    assert "projects" in json.loads(result)
    user_token = hanami_token.request_token(address, new_id, new_pw)
    result = switch_project(user_token, address, project_id)
    assert json.loads(result)["token"]
    result = remove_project_fromUser(token, address, user_id, project_id)
    assert json.loads(result)["projects"] == []
    user.delete_user(token, address, user_id)
    project.delete_project(token, address, project_id)

    # Data-Set
    train_dataset_name = "train_test_dataset"
    train_inputs, train_labels = pattern_mnist(files, "docs", 200)
    dataset_uuid = dataset.upload_mnist_files(token, address, train_dataset_name,
                                              train_inputs, train_labels)
    assert len(dataset_uuid) == 36
    csv_path = files / "test-file.csv"
    csv_path.write_text("test_input,test_output\n1,0\n2,0.5\n")
    csv_uuid = dataset.upload_csv_files(token, address, train_dataset_name, str(csv_path))
    result = dataset.get_dataset(token, address, dataset_uuid)
    assert json.loads(result)["name"] == train_dataset_name
    result = dataset.list_datasets(token, address)
    assert dataset_uuid in result and csv_uuid in result
    dataset.delete_dataset(token, address, csv_uuid)

    # Cluster
    cluster_name = "test_cluster"
    cluster_template = SEED_TEMPLATE
    result = cluster.create_cluster(token, address, cluster_name, cluster_template)
    cluster_uuid = json.loads(result)["uuid"]
    result = cluster.get_cluster(token, address, cluster_uuid)
    assert json.loads(result)["name"] == cluster_name
    result = cluster.list_clusters(token, address)
    assert cluster_uuid in result

    host_uuid = json.loads(hosts.list_hosts(token, address))["body"][0][0]
    result = cluster.switch_host(token, address, cluster_uuid, host_uuid)
    assert json.loads(result)["uuid"] == cluster_uuid

    # Task: train, with the documented wait loop
    task_name = "test_task"
    inputs = {"picture": dataset_uuid}
    outputs = {"label": dataset_uuid}
    result = task.create_train_task(token,
                                    address,
                                    task_name,
                                    cluster_uuid,
                                    inputs,
                                    outputs)
    task_uuid = json.loads(result)["uuid"]
    finished = False
    while not finished:
        result = task.get_task(token, address, task_uuid, cluster_uuid)
        finished = json.loads(result)["state"] == "finished"
        time.sleep(0.05)

    # checkpoint of the trained cluster, and restore
    checkpoint_name = "test_checkpoint"
    result = cluster.save_cluster(token, address, checkpoint_name, cluster_uuid)
    assert json.loads(result)["name"] == checkpoint_name
    checkpoint_uuid = json.loads(result)["uuid"]
    result = cluster.restore_cluster(token, address, checkpoint_uuid, cluster_uuid)
    assert "uuid" in json.loads(result)

    # Task: request
    results = {"label": "test_output"}
    result = task.create_request_task(token,
                                      address,
                                      task_name,
                                      cluster_uuid,
                                      inputs,
                                      results)
    task_uuid = json.loads(result)["uuid"]
    finished = False
    while not finished:
        result = task.get_task(token, address, task_uuid, cluster_uuid)
        finished = json.loads(result)["state"] == "finished"
        time.sleep(0.05)
    result = task.list_tasks(token, address, cluster_uuid)
    assert task_uuid in result

    # Check MNIST Dataset Result
    request_dataset_uuid = dataset_uuid
    result = request_result.check_against_dataset(token,
                                                  address,
                                                  task_uuid,
                                                  request_dataset_uuid)
    assert "accuracy" in json.loads(result)
    task.delete_task(token, address, task_uuid, cluster_uuid)

    # Checkpoint
    result = checkpoint.list_checkpoints(token, address)
    assert checkpoint_uuid in result
    checkpoint.delete_checkpoint(token, address, checkpoint_uuid)

    # Hosts
    result = hosts.list_hosts(token, address)
    assert json.loads(result)["header"] == ["uuid", "type"]

    # clean-up
    cluster.delete_cluster(token, address, cluster_uuid)
    dataset.delete_dataset(token, address, dataset_uuid)
    dataset.delete_dataset(token, address, task_uuid)
