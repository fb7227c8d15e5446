"""Direct IO: train and request single samples over a websocket, without tasks.

Open the connection with ``await cluster.switch_to_direct_mode(...)``. Every message is
answered by the server before the next one is sent; values sent with ``is_last=False`` are
only staged, the message with ``is_last=True`` runs one training step or one request.
Calls on one connection from concurrent coroutines take turns (each call's messages and
answers stay together); for parallel samples, open one connection per coroutine: the first
from ``switch_to_direct_mode``, more with :func:`connect` (an addition).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import struct
import weakref
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Union

import websockets
from websockets.asyncio.client import ClientConnection

from .hanami_exceptions import (
    BadRequestException,
    ConflictException,
    HanamiException,
    NotFoundException,
    UnauthorizedException,
)
from .hanami_messages import (
    EXPECTED_BUFFER_TYPE,
    INPUT_BUFFER_TYPE,
    REQUEST_TYPE,
    TRAIN_TYPE,
    ClusterIOMessage,
    DecodeError,
)
from . import _websocket
from .hanami_request import Verify

async def connect(token: str, address: str, cluster_uuid: str,
                  verify_connection: Verify = True) -> ClientConnection:
    """Opens another direct-IO connection to a cluster that ``cluster.switch_to_direct_mode``
    has already switched to DIRECT mode (an addition), so that coroutines can send samples in
    parallel, each on its own connection. Close it with ``await ws.close()``.

    Raises ``ConflictException`` when the cluster is not in DIRECT mode (or has as many
    sessions as the server allows), ``NotFoundException`` for an unknown cluster and
    ``UnauthorizedException`` for a refused token.
    """
    return await _websocket.cluster_session(token, address, cluster_uuid, verify_connection)


#: Close codes the server uses when it refuses a message: unknown name, invalid message
#: (1008); a message over its size limit (1009).
_CLOSE_REFUSED = (1008, 1009)

RequestOutput = Union[List[float], Dict[str, List[float]]]

#: Values travel as 32-bit floats: from this magnitude on they would round to infinity
#: (halfway between the largest finite one and 2**128).
_F32_LIMIT = 3.4028235677973366e38

#: One lock per connection, so that concurrent calls on it take turns (the answers of one
#: call would otherwise be read by another).
_turns: "weakref.WeakKeyDictionary[Any, asyncio.Lock]" = weakref.WeakKeyDictionary()

#: Connections on which a call ended between its message and its answers (cancelled, or
#: interrupted): those answers would be read by the next call.
_out_of_step: "weakref.WeakSet[Any]" = weakref.WeakSet()

#: Connections the server closed when it refused a call's message, with its reason: a later
#: call is told so, not handed the earlier call's refusal as if it were its own.
_refused: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _exchange(ws: Any) -> AsyncIterator[None]:
    """One call's turn on a connection: its messages and their answers."""
    if not (callable(getattr(ws, "send", None)) and callable(getattr(ws, "recv", None))):
        raise TypeError(f"ws must be the connection that cluster.switch_to_direct_mode "
                        f"returns, not {type(ws).__name__}")
    lock = _turns.get(ws)
    if lock is None:
        lock = _turns[ws] = asyncio.Lock()
    async with lock:
        if ws in _out_of_step:
            raise HanamiException("this direct-IO connection is out of step: an earlier call "
                                  "on it was cancelled or interrupted before its answers "
                                  "arrived; open a new connection")
        reason = _refused.get(ws)
        if reason is not None:
            raise HanamiException(f"this direct-IO connection is closed: the server closed it "
                                  f"when it refused an earlier message ({reason}); open a new "
                                  f"connection")
        try:
            yield
        except BaseException as e:
            # A closed connection says so itself on the next call (the server went away, or
            # closed it for its cluster or access); an open one may still carry this call's
            # answers.
            if getattr(ws, "close_code", None) is None:
                _out_of_step.add(ws)
            elif type(e) is BadRequestException:  # only a refusal raises it here
                _refused[ws] = e.message
            raise


def _checked(hexagon_name: Any, values: Any, expected: bool = False) -> List[float]:
    """The values as floats, and the name checked: wrong types, values that 32-bit floats
    cannot hold, and values that the server would refuse (not-a-number and infinity;
    ``expected`` values outside [0, 1]) are refused here, by index, before anything is
    sent, so the connection stays usable (the server closes it when it refuses a
    message)."""
    if not isinstance(hexagon_name, str):
        raise TypeError(f"hexagon_name must be a str, got {type(hexagon_name).__name__}")
    if isinstance(values, (str, bytes, bytearray)):
        raise TypeError(f"values for '{hexagon_name}' must be a sequence of numbers, got "
                        f"{type(values).__name__}")
    if getattr(values, "ndim", 1) > 1:
        values = values.ravel()  # a numpy image: its rows one after another
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"values for '{hexagon_name}' must be a sequence of numbers, got "
                        f"{type(values).__name__}") from None
    try:
        numbers = [float(value) for value in values]  # the usual case: one quick pass
    except (OverflowError, TypeError, ValueError):
        numbers = [_number(hexagon_name, i, value) for i, value in enumerate(values)]
    # float() reads text too ("1.5"): no number for this purpose.
    if any(issubclass(kind, _TEXT) for kind in set(map(type, values))):
        index = next(i for i, value in enumerate(values) if isinstance(value, _TEXT))
        raise _no_number(hexagon_name, index, values[index])
    for index in (i for i, x in enumerate(numbers) if not -_F32_LIMIT < x < _F32_LIMIT):
        if math.isfinite(numbers[index]):
            raise _beyond(hexagon_name, index, values[index])
        raise BadRequestException(f"value {index} for '{hexagon_name}' "
                                  f"({_shown(values[index])}) is not a finite number")
    if expected:
        # As sent: rounded to 32-bit floats (1.0000000001 becomes 1.0, which the server takes).
        for index in (i for i, x in enumerate(numbers) if not 0.0 <= _as_f32(x) <= 1.0):
            raise BadRequestException(f"expected value {index} for '{hexagon_name}' "
                                      f"({_shown(values[index])}) is outside [0, 1], which "
                                      f"the outputs (sigmoids) cannot reach")
    return numbers


def _as_f32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float, as it is sent."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


#: Types whose values float() reads as numbers, which are none.
_TEXT = (str, bytes, bytearray)


def _flag(name: str, value: Any) -> bool:
    """A yes/no argument as a bool; text is refused (``"False"`` would count as true)."""
    if isinstance(value, _TEXT) or value is None:
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _shown(value: Any) -> str:
    """A value's repr for a message, shortened with an ellipsis beyond 40 characters (a
    plain cut left half a quote)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _no_number(hexagon_name: str, index: int, value: Any) -> TypeError:
    return TypeError(f"value {index} for '{hexagon_name}' is not a number: {_shown(value)}")


def _number(hexagon_name: str, index: int, value: Any) -> float:
    """One value as a float, or the error that names it."""
    try:
        return float(value)
    except OverflowError:
        raise _beyond(hexagon_name, index, value) from None
    except (TypeError, ValueError):
        raise _no_number(hexagon_name, index, value) from None


def _beyond(hexagon_name: str, index: int, value: Any) -> BadRequestException:
    return BadRequestException(f"value {index} for '{hexagon_name}' ({_shown(value)}) is "
                               f"beyond the range of 32-bit floats")


async def _receive(ws: Any) -> ClusterIOMessage:
    try:
        frame = await ws.recv()
    except websockets.ConnectionClosed as e:
        raise _closed(e) from e
    if isinstance(frame, str):
        raise HanamiException(f"unexpected text message from the server: {frame!r}")
    try:
        return ClusterIOMessage.decode(frame)
    except DecodeError as e:
        raise HanamiException(f"invalid ClusterIO_Message from the server: {e}") from e


def _closed(closed: websockets.ConnectionClosed) -> HanamiException:
    """The exception for a call on a connection that is closed: the server's refusal when
    it closed the session for a reason (also when that came before this call's message),
    else the closing itself."""
    close = closed.rcvd
    if close is not None and close.code in _CLOSE_REFUSED:
        return _refusal(close.reason)
    reason = close.reason if close is not None else ""
    if reason == _websocket.SHUTTING_DOWN:
        # A temporary state of the server, as a REST call would answer it (503).
        return _websocket.shutting_down()
    sent = closed.sent
    if close is None and sent is not None and sent.reason == "keepalive ping timeout":
        return HanamiException("the server stopped answering (the connection's keepalive pings "
                               "went unanswered), so this direct-IO connection was closed; "
                               "what the session trained may not be saved")
    if sent is not None and closed.rcvd_then_sent is False:
        return HanamiException("this direct-IO connection was closed by this client (its "
                               "close()); open a new one with direct_io.connect")
    return HanamiException(f"direct-IO connection closed: {reason or closed}")


def _refusal(reason: str) -> HanamiException:
    """The exception for a session the server closed for a reason: the cluster gone, out of
    DIRECT mode, and access withdrawn or denied as the REST calls would report them,
    anything else (a refused message) as a bad request."""
    if reason == "the cluster was deleted":
        return NotFoundException(reason)
    if reason.startswith(_websocket.LEFT_DIRECT_MODE):
        return ConflictException(reason)
    if reason.startswith("access withdrawn: ") or reason == _websocket.POLICY_DENIED:
        return UnauthorizedException(reason)
    return BadRequestException(reason or "the server refused the message")


def _encoded(message: ClusterIOMessage) -> bytes:
    """The message as sent; one beyond the server's limit is refused here."""
    data = message.encode()
    if len(data) > _websocket.MAX_MESSAGE_BYTES:
        raise BadRequestException(
            f"a message for '{message.buffer_name}' would take {len(data)} bytes; the server "
            f"takes at most {_websocket.MAX_MESSAGE_BYTES} bytes (16 MiB) per message; nothing "
            f"was sent")
    return data


async def _send(ws: Any, data: bytes) -> None:
    try:
        await ws.send(data)
    except websockets.ConnectionClosed as e:
        raise _closed(e) from e


def _is_ack(message: ClusterIOMessage) -> bool:
    return message.process_type == TRAIN_TYPE and not message.buffer_name


async def _send_train_input(ws: Any, hexagon_name: str, values: Sequence[float],
                            is_input: bool, is_last: Optional[bool] = None,
                            verify_connection: Verify = True) -> None:
    """Sends values for one training sample.

    ``hexagon_name`` names an input of the cluster (``is_input=True``) or an output whose
    expected values these are (``is_input=False``). With ``is_last=True`` the staged sample
    is trained (one step) before this returns.

    The seed documentation's four-argument form ``send_train_input(ws, name, values,
    is_last)`` is accepted too: then the values are input values unless ``is_last`` is
    true, in which case they are the expected output values, i.e. send all inputs first and
    the expected values last (for clusters with several outputs use the five-argument form).
    ``verify_connection`` is accepted for symmetry and unused.

    Raises ``BadRequestException`` if the server refuses the message (unknown name; the
    connection is closed then), or for values it would refuse (not finite; expected values
    outside [0, 1]), which are not sent (the connection stays usable).
    """
    del verify_connection
    if is_last is None:
        # The documentation's four-argument form: the fourth argument is is_last.
        is_last = _flag("is_last", is_input)
        is_input = not is_last
    else:
        is_input = _flag("is_input", is_input)
        is_last = _flag("is_last", is_last)
    values = _checked(hexagon_name, values, expected=not is_input)
    message = ClusterIOMessage(
        buffer_name=hexagon_name,
        is_last=is_last,
        process_type=TRAIN_TYPE,
        target_buffer_type=INPUT_BUFFER_TYPE if is_input else EXPECTED_BUFFER_TYPE,
        number_of_values=len(values),
        values=values,
    )
    data = _encoded(message)
    async with _exchange(ws):
        await _send(ws, data)
        await _receive(ws)


_TRAIN_SIGNATURE = inspect.signature(_send_train_input)


@functools.wraps(_send_train_input)
async def send_train_input(*args: Any, **kwargs: Any) -> None:
    try:
        arguments = _TRAIN_SIGNATURE.bind(*args, **kwargs).arguments
    except TypeError as e:  # in the public name's words
        raise TypeError(f"send_train_input(): {e}") from None
    # The four-argument form is positional: `is_input=` without `is_last` is a slip that
    # would send the values as the expected ones and train a step.
    if "is_input" in kwargs and "is_last" not in arguments:
        raise TypeError("send_train_input() got is_input= but no is_last: give both (the "
                        "four-argument form takes is_last as its fourth positional argument)")
    await _send_train_input(*args, **kwargs)


async def send_request_input(ws: Any, hexagon_name: str, values: Sequence[float],
                             is_last: bool,
                             verify_connection: Verify = True) -> Optional[RequestOutput]:
    """Sends input values of a request; with ``is_last=True`` runs the request.

    Returns ``None`` for ``is_last=False``. For the last message it returns the raw output
    values: a list of floats for a cluster with one output, or a dict
    ``{output name: values}`` for a cluster with several outputs.

    Raises ``BadRequestException`` if the server refuses the message (unknown name; the
    connection is closed then), or for values that are not finite, which are not sent.
    """
    del verify_connection
    is_last = _flag("is_last", is_last)
    values = _checked(hexagon_name, values)
    message = ClusterIOMessage(
        buffer_name=hexagon_name,
        is_last=is_last,
        process_type=REQUEST_TYPE,
        target_buffer_type=INPUT_BUFFER_TYPE,
        number_of_values=len(values),
        values=values,
    )
    data = _encoded(message)
    async with _exchange(ws):
        return await _request(ws, message, data)


async def _request(ws: Any, message: ClusterIOMessage,
                   data: bytes) -> Optional[RequestOutput]:
    """Sends a request message and reads its answers (on the caller's turn)."""
    await _send(ws, data)
    first = await _receive(ws)
    if not message.is_last:
        return None
    # The server sends one message per output of the cluster, all at once. The client does
    # not know how many outputs there are, so it sends an empty (non-last, zero values)
    # input message as a marker: its acknowledgement comes after the last output message.
    outputs = [first]
    marker = ClusterIOMessage(buffer_name=message.buffer_name, process_type=REQUEST_TYPE,
                              target_buffer_type=INPUT_BUFFER_TYPE)
    await _send(ws, marker.encode())
    while True:
        reply = await _receive(ws)
        if _is_ack(reply):
            break
        outputs.append(reply)
    if len(outputs) == 1:
        return list(outputs[0].values)
    return {output.buffer_name: list(output.values) for output in outputs}
