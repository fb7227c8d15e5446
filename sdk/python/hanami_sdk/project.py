"""Projects (admins only)."""

from __future__ import annotations

from . import hanami_request
from .hanami_request import Verify

_PATH = "/v1.0alpha/project"


def create_project(token: str, address: str, project_id: str, project_name: str,
                   verify_connection: Verify = True) -> str:
    """Creates an empty project; returns the project object as JSON text
    (``id``, ``name``, ``creator_id``, ``created_at``).

    Raises ``ConflictException`` if the id exists, ``BadRequestException`` for an invalid id
    or name, ``UnauthorizedException`` for non-admins.
    """
    body = {"id": project_id, "name": project_name}
    return hanami_request.send_post_request(token, address, _PATH, body, verify_connection)


def get_project(token: str, address: str, project_id: str,
                verify_connection: Verify = True) -> str:
    """Returns one project as JSON text; ``NotFoundException`` if it does not exist."""
    return hanami_request.send_get_request(token, address, _PATH, {"id": project_id},
                                           verify_connection)


def list_projects(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists all projects as JSON text ``{"header": [...], "body": [[...], ...]}``
    (columns ``created_at, id, name, creator_id``)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all", None,
                                           verify_connection)


def delete_project(token: str, address: str, project_id: str,
                   verify_connection: Verify = True) -> str:
    """Deletes a project; returns ``{}``. ``NotFoundException`` if it does not exist,
    ``ConflictException`` if it still owns resources."""
    return hanami_request.send_delete_request(token, address, _PATH, {"id": project_id},
                                              verify_connection)
