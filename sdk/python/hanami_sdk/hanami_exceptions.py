"""Exceptions raised by the SDK for HTTP error answers of the server.

Every status code the server documents has its own class:

=====  ==================================
400    :class:`BadRequestException`
401    :class:`UnauthorizedException`
404    :class:`NotFoundException`
409    :class:`ConflictException`
500    :class:`InternalServerErrorException`
=====  ==================================

A request too large for the server (413, 414, 431: a very long argument, say) is a
:class:`BadRequestException` too, with its own ``status_code``. All of them derive from
:class:`HanamiException`, which is raised itself for any other non-200 status. Each instance has ``message`` (the server's error text, ``str``) and
``status_code`` (``int``, or ``None`` when the error did not come with an HTTP status, e.g. a
refused websocket session).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Optional, Union


def _text(message: Union[str, bytes, None]) -> str:
    if message is None:
        return ""
    if isinstance(message, (bytes, bytearray)):
        return bytes(message).decode("utf-8", errors="replace")
    return str(message)


class HanamiException(Exception):
    """Base class of all SDK errors that carry an answer of the server."""

    default_status: Optional[int] = None

    def __init__(self, message: Union[str, bytes, None] = "",
                 status_code: Optional[int] = None) -> None:
        self.message: str = _text(message)
        self.status_code: Optional[int] = (
            status_code if status_code is not None else self.default_status
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class BadRequestException(HanamiException):
    """HTTP 400: the request was malformed or failed validation."""

    default_status = 400


class UnauthorizedException(HanamiException):
    """HTTP 401: missing, invalid or expired token, or access denied."""

    default_status = 401


class NotFoundException(HanamiException):
    """HTTP 404: the resource does not exist (or is outside the caller's scope)."""

    default_status = 404


class ConflictException(HanamiException):
    """HTTP 409: the resource already exists or is in a state that forbids the action."""

    default_status = 409


class InternalServerErrorException(HanamiException):
    """HTTP 500: the server failed; details are in the server's log and error log.

    The original server sent no text with a 500; this server names an error id in the body,
    which is kept in ``message`` and shown after the fixed text.
    """

    default_status = 500

    def __str__(self) -> str:
        text = "Server internal error appeared."
        return f"{text} ({self.message})" if self.message else text


_BY_STATUS = {
    400: BadRequestException,
    401: UnauthorizedException,
    404: NotFoundException,
    409: ConflictException,
    500: InternalServerErrorException,
}


#: What an answer without text of these statuses means for a call of this SDK.
_TOO_LARGE = {
    413: "the request is too large for the server",
    414: "the request's URL is too long for the server (is an argument very long?)",
    431: "the request's URL or headers are too large for the server (is an argument very "
         "long?)",
}


def _readable(status_code: int, message: Union[str, bytes, None]) -> str:
    """The text of an error answer as a message: an HTML page (from a web server or proxy
    that is not a Hanami server) by its title, and an answer without text of a status that
    no Hanami call expects by what the status means."""
    text = _text(message)
    if text.lstrip()[:14].lower().startswith(("<!doctype html", "<html")):
        found = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        title = f" titled '{' '.join(found.group(1).split())[:80]}'" if found else ""
        return (f"the answer is an HTML page{title}, which a Hanami server does not send: "
                f"is the address that of a Hanami server?")
    if not text and status_code not in _BY_STATUS:
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            return ""
        return f"{phrase}: {_TOO_LARGE[status_code]}" if status_code in _TOO_LARGE else phrase
    return text


def exception_for_status(status_code: int, message: Union[str, bytes, None]) -> HanamiException:
    """Returns the exception matching an HTTP status (``BadRequestException`` for a request
    too large for the server, ``HanamiException`` for others)."""
    cls = _BY_STATUS.get(status_code,
                         BadRequestException if status_code in _TOO_LARGE else HanamiException)
    text = _readable(status_code, message)
    if cls is HanamiException:
        return HanamiException(f"status {status_code}: {text}" if text else
                               f"status {status_code}", status_code)
    return cls(text, status_code)
