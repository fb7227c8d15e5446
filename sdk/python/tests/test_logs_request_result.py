"""The logs module and the request_result compatibility module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanami_sdk import cluster, dataset, logs, project, request_result, task
from hanami_sdk import hanami_exceptions as hx

from helpers import ADMIN, SEED_TEMPLATE, pattern_mnist, unique, wait_for_task


def test_audit_log(address: str, token: str, member) -> None:
    project_id = unique("audited")
    project.create_project(token, address, project_id, "Audited Project")
    project.delete_project(token, address, project_id)
    page = json.loads(logs.list_audit_logs(token, address, "", 0))
    assert page["header"] == ["created_at", "user_id", "endpoint", "request_type"]
    entries = [row[1:] for row in page["body"]]
    assert [ADMIN, "v1.0alpha/project", "POST"] in entries
    assert [ADMIN, "v1.0alpha/project", "DELETE"] in entries
    # admins may read other users' logs; members only their own
    assert json.loads(logs.list_audit_logs(token, address, member.user_id, 0))["body"] == []
    own = json.loads(logs.list_audit_logs(member.token, address))
    assert own["body"] == []
    with pytest.raises(hx.UnauthorizedException):
        logs.list_audit_logs(member.token, address, ADMIN, 0)
    # pages past the end are empty
    assert json.loads(logs.list_audit_logs(token, address, ADMIN, 1000))["body"] == []
    with pytest.raises(hx.BadRequestException):
        logs.list_audit_logs(token, address, "", -1)


def test_error_log(address: str, token: str, member) -> None:
    page = json.loads(logs.list_error_logs(token, address, "", 0))
    assert page["header"] == ["created_at", "user_id", "component", "context",
                              "input_values", "message"]
    assert isinstance(json.loads(logs.list_error_logs(token, address, ADMIN, 0))["body"],
                      list)
    with pytest.raises(hx.UnauthorizedException):
        logs.list_error_logs(member.token, address, "", 0)


def test_request_result_compatibility(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "compat", 200)
    data = dataset.upload_mnist_files(token, address, unique("compat_set"), images, labels)
    cluster_uuid = json.loads(cluster.create_cluster(token, address, unique("compat"),
                                                     SEED_TEMPLATE))["uuid"]
    try:
        train = json.loads(task.create_train_task(token, address, "train_task", cluster_uuid,
                                                  {"picture": data}, {"label": data}))
        wait_for_task(token, address, train["uuid"], cluster_uuid)
        result_name = unique("test_output")
        request = json.loads(task.create_request_task(token, address, "request_task",
                                                      cluster_uuid, {"picture": data},
                                                      {"label": result_name}))
        task_uuid = request["uuid"]
        wait_for_task(token, address, task_uuid, cluster_uuid)

        # the seed's call: request_result.check_against_dataset(token, address, task_uuid,
        #                                                       request_dataset_uuid)
        checked = json.loads(request_result.check_against_dataset(token, address, task_uuid,
                                                                  data))
        assert checked == json.loads(dataset.check_mnist_dataset(token, address, data,
                                                                 task_uuid))
        assert 0.0 <= checked["accuracy"] <= 100.0

        got = json.loads(request_result.get_request_result(token, address, task_uuid))
        assert got["name"] == result_name
        listed = json.loads(request_result.list_request_results(token, address))
        assert task_uuid in [row[1] for row in listed["body"]]
        assert request_result.delete_request_result(token, address, task_uuid) == "{}"
        with pytest.raises(hx.NotFoundException):
            request_result.get_request_result(token, address, task_uuid)
    finally:
        cluster.delete_cluster(token, address, cluster_uuid)
        dataset.delete_dataset(token, address, data)
