"""Users, their project assignments, and switching the project of a token."""

from __future__ import annotations

from typing import Optional

from . import hanami_request
from .hanami_request import Verify

_PATH = "/v1.0alpha/user"


def create_user(token: str, address: str, user_id: str, user_name: str,
                passwort: Optional[str] = None, is_admin: bool = False,
                verify_connection: Verify = True, *, password: Optional[str] = None) -> str:
    """Creates a user (admins only); returns the user object as JSON text
    (``id``, ``name``, ``is_admin``, ``projects``, ``creator_id``, ``created_at``).

    The password is the fifth argument (named ``passwort`` as in the original SDK); it may
    also be given as keyword ``password``. With ``is_admin=True`` the user becomes a global
    admin. Raises ``ConflictException`` if the id exists, ``BadRequestException`` for invalid
    values (ids: letters, digits, ``_``, ``@``, 4..254 characters; password 8..4096;
    ``is_admin`` must be a bool: a string such as ``"false"`` is refused, not read as true).
    """
    if password is not None and passwort is not None and password != passwort:
        raise TypeError("create_user() got different values for 'passwort' and 'password'")
    secret = password if password is not None else passwort
    if secret is None:
        raise TypeError("create_user() missing the password ('passwort' or 'password')")
    body = {"id": user_id, "name": user_name, "password": secret, "is_admin": is_admin}
    return hanami_request.send_post_request(token, address, _PATH, body, verify_connection)


def get_user(token: str, address: str, user_id: str, verify_connection: Verify = True) -> str:
    """Returns one user as JSON text; ``NotFoundException`` if it does not exist."""
    return hanami_request.send_get_request(token, address, _PATH, {"id": user_id},
                                           verify_connection)


def list_users(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists all users as JSON text ``{"header", "body"}``
    (columns ``created_at, id, name, creator_id, projects, is_admin``)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all", None,
                                           verify_connection)


def delete_user(token: str, address: str, user_id: str, verify_connection: Verify = True) -> str:
    """Deletes a user; returns ``{}``. ``NotFoundException`` if it does not exist,
    ``ConflictException`` when users try to delete themselves, or while the user still
    owns clusters, datasets or checkpoints, or has unfinished uploads (the message names
    them)."""
    return hanami_request.send_delete_request(token, address, _PATH, {"id": user_id},
                                              verify_connection)


def update_user(token: str, address: str, user_id: str, user_name: Optional[str] = None,
                password: Optional[str] = None, is_admin: Optional[bool] = None,
                verify_connection: Verify = True) -> str:
    """Changes a user's name, password or global admin flag (admins only; an addition to
    the original SDK); returns the user object as it is now, as JSON text. Give at least one
    change (``BadRequestException`` otherwise). A new password ends the user's tokens, which
    then raise ``UnauthorizedException`` (log in again). ``NotFoundException`` for an unknown
    user, ``ConflictException`` for an admin taking away his own rights."""
    body = {"id": user_id}
    for key, value in (("name", user_name), ("password", password), ("is_admin", is_admin)):
        if value is not None:
            body[key] = value
    return hanami_request.send_put_request(token, address, _PATH, body, verify_connection)


def add_roject_to_user(token: str, address: str, user_id: str, project_id: str, role: str,
                       is_project_admin: bool = False, verify_connection: Verify = True) -> str:
    """Assigns a project to a user with a role (``admin`` or ``member`` in the default
    policy); returns the updated user object as JSON text.

    The name keeps the original SDK's spelling; :func:`add_project_to_user` is the same
    function. ``is_project_admin=True`` lets the user act on all resources of the project.
    Raises ``NotFoundException`` for an unknown user or project, ``ConflictException`` if the
    project is already assigned, ``BadRequestException`` if ``is_project_admin`` is no bool.
    """
    body = {"id": user_id, "project_id": project_id, "role": role,
            "is_project_admin": is_project_admin}
    return hanami_request.send_post_request(token, address, _PATH + "/project", body,
                                            verify_connection)


def remove_project_fromUser(token: str, address: str, user_id: str, project_id: str,
                            verify_connection: Verify = True) -> str:
    """Removes a project from a user; returns the updated user object as JSON text.

    The name keeps the original SDK's spelling; :func:`remove_project_from_user` is the same
    function. ``NotFoundException`` if the user does not exist or lacks the project.
    """
    values = {"project_id": project_id, "id": user_id}
    return hanami_request.send_delete_request(token, address, _PATH + "/project", values,
                                              verify_connection)


def list_projects_of_user(token: str, address: str, verify_connection: Verify = True, *,
                          user_id: Optional[str] = None) -> str:
    """Lists the projects of the current user (the token's user) as JSON text
    ``{"projects": [{"project_id", "role", "is_project_admin"}, ...]}``.

    Global admins also see the synthetic ``admin`` project. Admins may ask about another
    user with the keyword ``user_id``.
    """
    return hanami_request.send_get_request(token, address, _PATH + "/project",
                                           {"user_id": user_id}, verify_connection)


def switch_project(token: str, address: str, project_id: str,
                   verify_connection: Verify = True) -> str:
    """Switches the current user to another of its projects.

    Returns JSON text with a **new token** for that project (``id``, ``name``, ``is_admin``,
    ``token``); use ``json.loads(result)["token"]`` for the following calls. The old token
    stays valid. ``UnauthorizedException`` if the project is not assigned to the user.

    (The original SDK posted to the project-assignment endpoint and always failed; this
    calls ``PUT /v1.0alpha/token``, the server's real project switch.)
    """
    return hanami_request.send_put_request(token, address, "/v1.0alpha/token",
                                           {"project_id": project_id}, verify_connection)


#: Correctly spelled alias of :func:`add_roject_to_user`.
add_project_to_user = add_roject_to_user
#: Correctly spelled alias of :func:`remove_project_fromUser`.
remove_project_from_user = remove_project_fromUser
