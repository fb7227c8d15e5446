"""Token, project and user functions against the real server."""

from __future__ import annotations

import json

import pytest

from hanami_sdk import hanami_exceptions as hx
from hanami_sdk import hanami_request, hanami_token, project, task, user

from helpers import ADMIN, ADMIN_PW, unique


# ------------------------------------------------------------------------------ token

def test_request_token(address: str) -> None:
    token = hanami_token.request_token(address, ADMIN, ADMIN_PW)
    assert isinstance(token, str) and token.count(".") == 2
    # verify_connection as positional last argument (ignored for http)
    assert hanami_token.request_token(address, ADMIN, ADMIN_PW, False)


def test_request_token_errors(address: str) -> None:
    with pytest.raises(hx.UnauthorizedException):
        hanami_token.request_token(address, ADMIN, "wrong password")
    with pytest.raises(hx.UnauthorizedException):
        hanami_token.request_token(address, "nobody_here", ADMIN_PW)
    with pytest.raises(hx.BadRequestException):
        hanami_token.request_token(address, "ab", ADMIN_PW)  # id shorter than 4
    # An address with a path the server does not know: said why.
    with pytest.raises(hx.UnauthorizedException) as info:
        hanami_token.request_token(address + "/v1.0alpha", ADMIN, ADMIN_PW)
    assert "the address has the path '/v1.0alpha'" in info.value.message
    # An address without its scheme.
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        hanami_token.request_token(address.split("://", 1)[1], ADMIN, ADMIN_PW)
    # What the Rust SDK and hanamictl refuse too: no host, a port out of range, a query or
    # fragment, a user or password.
    for wrong, why in [("http://", "got 'http://'"), ("http://:80", "got 'http://:80'"),
                       ("http://host:0", "with a port from 1 to 65535"),
                       ("http://host:65536", "with a port from 1 to 65535"),
                       ("http://host:x", "with a port from 1 to 65535"),
                       (address + "/?a=b", "without a query or fragment"),
                       (address + "#top", "without a query or fragment"),
                       ("http://u:p@host:1", "without a user or password in it")]:
        with pytest.raises(ValueError) as refused:
            hanami_token.request_token(wrong, ADMIN, ADMIN_PW)
        assert why in str(refused.value), (wrong, refused.value)
    assert hanami_request.base_url("HTTP://[::1]:8/prefix/") == "HTTP://[::1]:8/prefix"
    # White space in it, such as a blank or a line break left at its end: said so.
    for stray in [address + " ", address + "/ ", address + "\n", " " + address,
                  address[:-1] + " " + address[-1]]:
        with pytest.raises(ValueError, match="without spaces"):
            hanami_token.request_token(stray, ADMIN, ADMIN_PW)
    # A string in the place of verify_connection that names no certificate file (a user
    # id meant for the keyword user_id, say) is refused, also for http addresses.
    token = hanami_token.request_token(address, ADMIN, ADMIN_PW)
    with pytest.raises(ValueError, match="'asdf' names no such file"):
        user.list_projects_of_user(token, address, "asdf")


def test_invalid_token_is_unauthorized(address: str) -> None:
    with pytest.raises(hx.UnauthorizedException):
        project.list_projects("not.a.token", address)


# ------------------------------------------------------------------------------ project

def test_project_lifecycle(address: str, token: str) -> None:
    project_id = unique("project")
    created = json.loads(project.create_project(token, address, project_id, "Test Project"))
    assert created["id"] == project_id
    assert created["name"] == "Test Project"
    assert created["creator_id"] == ADMIN
    with pytest.raises(hx.ConflictException):
        project.create_project(token, address, project_id, "Test Project")

    assert json.loads(project.get_project(token, address, project_id))["id"] == project_id
    with pytest.raises(hx.NotFoundException):
        project.get_project(token, address, "fail_project")

    listed = json.loads(project.list_projects(token, address))
    assert listed["header"] == ["created_at", "id", "name", "creator_id"]
    assert [project_id, "Test Project", ADMIN] in [row[1:] for row in listed["body"]]

    assert json.loads(project.delete_project(token, address, project_id)) == {}
    with pytest.raises(hx.NotFoundException):
        project.delete_project(token, address, project_id)


def test_project_errors(address: str, token: str, member) -> None:
    with pytest.raises(hx.BadRequestException):
        project.create_project(token, address, "1invalid", "Name")
    with pytest.raises(hx.UnauthorizedException):
        project.list_projects(member.token, address)
    with pytest.raises(hx.UnauthorizedException):
        project.create_project(member.token, address, unique("p"), "Name")
    # An id too long for any URL the server reads is a bad request too, by its own status.
    with pytest.raises(hx.BadRequestException) as info:
        project.get_project(token, address, "a" * 100_000)
    assert info.value.status_code == 414
    assert "the request's URL is too long for the server" in info.value.message
    # Text that UTF-8 cannot encode (a lone surrogate) is refused by its field before it is
    # sent, in a query as in a body (it raised UnicodeEncodeError, or got the server's JSON
    # parser's words for a broken escape).
    cluster = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    for call, field in [(lambda: project.get_project(token, address, "ab\udc80"), "id"),
                        (lambda: project.create_project(token, address, unique("p"),
                                                        "ab\ud800cd"), "name"),
                        # Inside a map, as value or key: an unknown cluster would be a 404,
                        # so the refusal shows that nothing went out.
                        (lambda: task.create_train_task(token, address, "t", cluster,
                                                        {"picture": "ab\udc80"},
                                                        {"label": "x"}), "inputs"),
                        (lambda: task.create_request_task(token, address, "t", cluster,
                                                          {"picture": "x"},
                                                          {"la\ud800bel": "r"}), "results")]:
        with pytest.raises(hx.BadRequestException) as info:
            call()
        assert info.value.message.startswith(f"'{field}' is no valid text: it holds a lone "
                                             f"surrogate (")
        assert info.value.message.endswith("which UTF-8 cannot encode; nothing was sent")


# ------------------------------------------------------------------------------ user

def test_user_lifecycle(address: str, token: str) -> None:
    user_id = unique("tsugumi")
    created = json.loads(user.create_user(token, address, user_id, "Tsugumi",
                                          "new password", True))
    assert created == {**created, "id": user_id, "name": "Tsugumi", "is_admin": True,
                       "projects": [], "creator_id": ADMIN}
    with pytest.raises(hx.ConflictException):
        user.create_user(token, address, user_id, "Tsugumi", "new password", True)
    # the new admin can log in
    assert hanami_token.request_token(address, user_id, "new password")

    assert json.loads(user.get_user(token, address, user_id))["name"] == "Tsugumi"
    with pytest.raises(hx.NotFoundException):
        user.get_user(token, address, "fail_user")

    listed = json.loads(user.list_users(token, address))
    assert listed["header"] == ["created_at", "id", "name", "creator_id", "projects",
                                "is_admin"]
    assert [user_id, "Tsugumi", ADMIN, [], True] in [row[1:] for row in listed["body"]]

    assert json.loads(user.delete_user(token, address, user_id)) == {}
    with pytest.raises(hx.NotFoundException):
        user.delete_user(token, address, user_id)


def test_update_user(address: str, token: str) -> None:
    user_id = unique("changing")
    user.create_user(token, address, user_id, "Before Name", "old password", True)
    old_token = hanami_token.request_token(address, user_id, "old password")
    changed = json.loads(user.update_user(token, address, user_id, "After Name"))
    assert changed["name"] == "After Name" and changed["is_admin"] is True
    user.update_user(token, address, user_id, password="new password", is_admin=False)
    with pytest.raises(hx.UnauthorizedException):
        user.list_users(old_token, address)
    with pytest.raises(hx.UnauthorizedException):
        hanami_token.request_token(address, user_id, "old password")
    assert json.loads(user.get_user(token, address, user_id))["is_admin"] is False
    with pytest.raises(hx.BadRequestException):
        user.update_user(token, address, user_id)
    with pytest.raises(hx.NotFoundException):
        user.update_user(token, address, unique("nobody"), "Some Name")
    user.delete_user(token, address, user_id)


def test_create_user_password_keyword(address: str, token: str) -> None:
    user_id = unique("kw_user")
    created = json.loads(user.create_user(token, address, user_id, "Keyword User",
                                          password="keyword password", is_admin=False))
    assert created["is_admin"] is False
    user.delete_user(token, address, user_id)
    with pytest.raises(TypeError):
        user.create_user(token, address, user_id, "No Password")


def test_user_errors(address: str, token: str, member) -> None:
    with pytest.raises(hx.ConflictException):
        user.delete_user(token, address, ADMIN)  # nobody may delete himself
    with pytest.raises(hx.BadRequestException):
        user.create_user(token, address, unique("u"), "Name", "short", False)
    with pytest.raises(hx.UnauthorizedException):
        user.list_users(member.token, address)


def test_admin_flags_must_be_bools(address: str, token: str) -> None:
    # A string is refused by the server, never read as true (bool("false") is True).
    user_id = unique("flag_user")
    for flag in ("false", "yes", 1):
        with pytest.raises(hx.BadRequestException, match="is_admin"):
            user.create_user(token, address, user_id, "Flag User", "flag password", flag)
    with pytest.raises(hx.NotFoundException):
        user.get_user(token, address, user_id)
    project_id = unique("flag_project")
    project.create_project(token, address, project_id, "Flag Project")
    user.create_user(token, address, user_id, "Flag User", "flag password", False)
    try:
        with pytest.raises(hx.BadRequestException, match="is_project_admin"):
            user.add_project_to_user(token, address, user_id, project_id, "member", "false")
        assert json.loads(user.get_user(token, address, user_id))["projects"] == []
    finally:
        user.delete_user(token, address, user_id)
        project.delete_project(token, address, project_id)


def test_project_assignment(address: str, token: str) -> None:
    project_id = unique("assign")
    user_id = unique("assignee")
    project.create_project(token, address, project_id, "Assign Project")
    user.create_user(token, address, user_id, "Assignee", "assignee password", False)
    try:
        # a non-admin without project cannot log in
        with pytest.raises(hx.UnauthorizedException):
            hanami_token.request_token(address, user_id, "assignee password")

        updated = json.loads(user.add_roject_to_user(token, address, user_id, project_id,
                                                     "member", True))
        assert updated["projects"] == [{"project_id": project_id, "role": "member",
                                        "is_project_admin": True}]
        with pytest.raises(hx.ConflictException):
            user.add_project_to_user(token, address, user_id, project_id, "member", True)
        with pytest.raises(hx.NotFoundException):
            user.add_project_to_user(token, address, user_id, "no_such_project", "member",
                                     False)
        with pytest.raises(hx.NotFoundException):
            user.add_project_to_user(token, address, "no_such_user", project_id, "member",
                                     False)

        member_token = hanami_token.request_token(address, user_id, "assignee password")
        own = json.loads(user.list_projects_of_user(member_token, address))
        assert own["projects"] == updated["projects"]
        # admins see their synthetic admin project, and may ask about others
        admin_projects = json.loads(user.list_projects_of_user(token, address))["projects"]
        assert {"project_id": "admin", "role": "admin",
                "is_project_admin": True} in admin_projects
        other = json.loads(user.list_projects_of_user(token, address, user_id=user_id))
        assert other == own

        removed = json.loads(user.remove_project_fromUser(token, address, user_id,
                                                          project_id))
        assert removed["projects"] == []
        with pytest.raises(hx.NotFoundException):
            user.remove_project_from_user(token, address, user_id, project_id)
        # the token of the removed assignment is refused from now on
        with pytest.raises(hx.UnauthorizedException):
            user.list_projects_of_user(member_token, address)
    finally:
        user.delete_user(token, address, user_id)
        project.delete_project(token, address, project_id)


def test_switch_project(address: str, token: str, member) -> None:
    second = unique("second")
    project.create_project(token, address, second, "Second Project")
    try:
        user.add_roject_to_user(token, address, member.user_id, second, "member", False)
        result = json.loads(user.switch_project(member.token, address, second))
        assert result["id"] == member.user_id
        new_token = result["token"]
        assert new_token != member.token
        own = json.loads(user.list_projects_of_user(new_token, address))["projects"]
        assert {p["project_id"] for p in own} == {member.project_id, second}
        with pytest.raises(hx.UnauthorizedException):
            user.switch_project(member.token, address, "not_assigned")
        # global admins may switch to the synthetic admin project
        assert json.loads(user.switch_project(token, address, "admin"))["token"]
        user.remove_project_fromUser(token, address, member.user_id, second)
    finally:
        project.delete_project(token, address, second)
