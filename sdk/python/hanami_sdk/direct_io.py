"""Direct IO: train and request single samples over a websocket, without tasks.

Open the connection with ``await cluster.switch_to_direct_mode(...)``. Every message is
answered by the server before the next one is sent; values sent with ``is_last=False`` are
only staged, the message with ``is_last=True`` runs one training step or one request.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import websockets

from .hanami_exceptions import BadRequestException, HanamiException
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

#: Close codes the server uses when it refuses a message: unknown name, invalid message
#: (1008); a message over its size limit (1009).
_CLOSE_REFUSED = (1008, 1009)

RequestOutput = Union[List[float], Dict[str, List[float]]]


async def _receive(ws: Any) -> ClusterIOMessage:
    try:
        frame = await ws.recv()
    except websockets.ConnectionClosed as e:
        close = e.rcvd
        reason = close.reason if close is not None else ""
        if close is not None and close.code in _CLOSE_REFUSED:
            raise BadRequestException(reason or "the server refused the message") from e
        raise HanamiException(f"direct-IO connection closed: {reason or e}") from e
    if isinstance(frame, str):
        raise HanamiException(f"unexpected text message from the server: {frame!r}")
    try:
        return ClusterIOMessage.decode(frame)
    except DecodeError as e:
        raise HanamiException(f"invalid ClusterIO_Message from the server: {e}") from e


async def _send(ws: Any, message: ClusterIOMessage) -> None:
    data = message.encode()
    if len(data) > _websocket.MAX_MESSAGE_BYTES:
        raise BadRequestException(
            f"a message for '{message.buffer_name}' would take {len(data)} bytes; the server "
            f"takes at most {_websocket.MAX_MESSAGE_BYTES} bytes (16 MiB) per message; nothing "
            f"was sent")
    try:
        await ws.send(data)
    except websockets.ConnectionClosed as e:
        raise HanamiException(f"direct-IO connection closed: {e}") from e


def _is_ack(message: ClusterIOMessage) -> bool:
    return message.process_type == TRAIN_TYPE and not message.buffer_name


async def send_train_input(ws: Any, hexagon_name: str, values: Sequence[float],
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

    Raises ``BadRequestException`` if the server refuses the message (unknown name); the
    connection is closed then.
    """
    del verify_connection
    if is_last is None:
        is_last = bool(is_input)
        is_input = not is_last
    values = [float(v) for v in values]
    message = ClusterIOMessage(
        buffer_name=hexagon_name,
        is_last=bool(is_last),
        process_type=TRAIN_TYPE,
        target_buffer_type=INPUT_BUFFER_TYPE if is_input else EXPECTED_BUFFER_TYPE,
        number_of_values=len(values),
        values=values,
    )
    await _send(ws, message)
    await _receive(ws)


async def send_request_input(ws: Any, hexagon_name: str, values: Sequence[float],
                             is_last: bool,
                             verify_connection: Verify = True) -> Optional[RequestOutput]:
    """Sends input values of a request; with ``is_last=True`` runs the request.

    Returns ``None`` for ``is_last=False``. For the last message it returns the raw output
    values: a list of floats for a cluster with one output, or a dict
    ``{output name: values}`` for a cluster with several outputs.

    Raises ``BadRequestException`` if the server refuses the message (unknown name).
    """
    del verify_connection
    values = [float(v) for v in values]
    message = ClusterIOMessage(
        buffer_name=hexagon_name,
        is_last=bool(is_last),
        process_type=REQUEST_TYPE,
        target_buffer_type=INPUT_BUFFER_TYPE,
        number_of_values=len(values),
        values=values,
    )
    await _send(ws, message)
    first = await _receive(ws)
    if not is_last:
        return None
    # The server sends one message per output of the cluster, all at once. The client does
    # not know how many outputs there are, so it sends an empty (non-last, zero values)
    # input message as a marker: its acknowledgement comes after the last output message.
    outputs = [first]
    await _send(ws, ClusterIOMessage(buffer_name=hexagon_name, process_type=REQUEST_TYPE,
                                     target_buffer_type=INPUT_BUFFER_TYPE))
    while True:
        reply = await _receive(ws)
        if _is_ack(reply):
            break
        outputs.append(reply)
    if len(outputs) == 1:
        return list(outputs[0].values)
    return {output.buffer_name: list(output.values) for output in outputs}
