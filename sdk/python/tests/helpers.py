"""Shared test helpers: generated datasets, the seed template, waiting for tasks."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import List, Tuple

from hanami_sdk import task

#: The cluster template of the seed documentation: 784 inputs ``picture``, 10 outputs
#: ``label``.
SEED_TEMPLATE = (
    "version: 1\n"
    "settings:\n"
    "    neuron_cooldown: 10000000.0\n"
    "    refractory_time: 1\n"
    "    max_connection_distance: 1\n"
    "    enable_reduction: false\n"
    "hexagons:\n"
    "    1,1,1\n"
    "    2,1,1\n"
    "    3,1,1\n"
    "    \n"
    "inputs:\n"
    "    picture:\n"
    "        target: 1,1,1\n"
    "        number_of_inputs: 784\n"
    "\n"
    "outputs:\n"
    "    label:\n"
    "        target: 3,1,1\n"
    "        number_of_outputs: 10\n"
)

ADMIN = "asdf"
ADMIN_PW = "asdfasdf"


def unique(prefix: str) -> str:
    """A fresh name that fits the server's id and name patterns."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pattern_image(label: int, noise_state: int) -> Tuple[bytes, int]:
    """One 28x28 image of class ``label``: rows ``2*label+4`` and ``2*label+5``, columns
    4..23 at 200, plus 10 noise pixels at 120 from a linear congruential generator."""
    image = bytearray(784)
    for row in (2 * label + 4, 2 * label + 5):
        for col in range(4, 24):
            image[row * 28 + col] = 200
    for _ in range(10):
        noise_state = (noise_state * 1103515245 + 12345) & 0xFFFFFFFF
        image[(noise_state >> 8) % 784] = 120
    return bytes(image), noise_state


def pattern_mnist(directory: Path, name: str, count: int,
                  seed: int = 12345) -> Tuple[str, str]:
    """Writes a learnable MNIST-like IDX pair (image ``i`` has label ``i % 10``) and
    returns the paths of the image and label files."""
    images = bytearray(struct.pack(">IIII", 0x0803, count, 28, 28))
    labels = bytearray(struct.pack(">II", 0x0801, count))
    state = seed
    for i in range(count):
        image, state = pattern_image(i % 10, state)
        images += image
        labels.append(i % 10)
    image_path = Path(directory) / f"{name}-images-idx3-ubyte"
    label_path = Path(directory) / f"{name}-labels-idx1-ubyte"
    image_path.write_bytes(bytes(images))
    label_path.write_bytes(bytes(labels))
    return str(image_path), str(label_path)


def wait_for_task(token: str, address: str, task_uuid: str, cluster_uuid: str,
                  timeout: float = 120.0, verify_connection: bool = True) -> dict:
    """Polls a task until it is finished; returns its last state."""
    deadline = time.monotonic() + timeout
    while True:
        state = json.loads(task.get_task(token, address, task_uuid, cluster_uuid,
                                         verify_connection))
        if state["state"] == "finished":
            return state
        assert state["state"] in ("queued", "active"), state
        assert time.monotonic() < deadline, f"task not finished: {state}"
        time.sleep(0.05)


def rows(list_text: str) -> list:
    """The body rows of a list answer."""
    return json.loads(list_text)["body"]


class _Relay:
    """A TCP relay on a free loopback port in front of a server: every connection is
    served by ``_serve`` on its own thread. ``address`` is the relay's ``http://``
    address."""

    def __init__(self, server_address: str) -> None:
        host, port = server_address.split("://", 1)[1].rsplit(":", 1)
        self._server = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Stops taking connections."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError


class AnswerDroppingProxy(_Relay):
    """A relay that passes every connection through both ways, except that a connection
    whose request starts with ``dropped_request`` gets no answer: the request reaches the
    server, and once the server's answer begins the proxy closes the client's side (a
    connection that broke while the answer was on its way)."""

    def __init__(self, server_address: str, dropped_request: bytes) -> None:
        self._dropped = dropped_request
        #: How many answers were dropped.
        self.dropped = 0
        super().__init__(server_address)

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._server) as server:
            first = client.recv(65536)
            server.sendall(first)
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            if first.startswith(self._dropped):
                server.recv(1)  # the answer begins: the server has done the work
                self.dropped += 1
                # Wakes the other thread's read too, which a plain close would not.
                client.shutdown(socket.SHUT_RDWR)
                return
            _pump(server, client)


class PathPrefixProxy(_Relay):
    """A relay that serves the server under the path ``prefix`` (``/hanami``, say), as a
    reverse proxy would: a connection whose request's path starts with it reaches the
    server without it, any other gets a 404. The SDK opens a connection per REST call and
    per websocket, so only a connection's first request is looked at. ``address`` is the
    relay's address with the prefix. Without ``pass_websockets`` it answers websocket
    openings with a 404 too."""

    def __init__(self, server_address: str, prefix: str, pass_websockets: bool = True) -> None:
        self._prefix = prefix.encode()
        self._pass_websockets = pass_websockets
        #: Requests refused for a path without the prefix.
        self.refused: List[bytes] = []
        super().__init__(server_address)
        self.address += prefix

    def _serve(self, client: socket.socket) -> None:
        with client:
            first = client.recv(65536)
            line, end, rest = first.partition(b"\r\n")
            method, _, target = line.partition(b" ")
            upgrade = b"\r\nupgrade: websocket\r\n" in first.lower()
            if not target.startswith(self._prefix + b"/") or (
                    upgrade and not self._pass_websockets):
                self.refused.append(line)
                client.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n"
                               b"connection: close\r\n\r\n")
                return
            with socket.create_connection(self._server) as server:
                server.sendall(method + b" " + target[len(self._prefix):] + end + rest)
                threading.Thread(target=_pump, args=(client, server), daemon=True).start()
                _pump(server, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copies bytes from ``source`` to ``sink`` until either side closes."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
