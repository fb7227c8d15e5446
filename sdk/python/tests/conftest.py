"""Starts the real ``hanami`` server for the tests.

The binary comes from ``HANAMI_BIN`` (default ``target/debug/hanami`` relative to the
repository root); build it with ``cargo build -p hanami-server --bin hanami``. Every server
listens on a free loopback port with a temporary data directory and the admin
``asdf``/``asdfasdf``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import pytest

from hanami_sdk import hanami_token, project, user

from helpers import ADMIN, ADMIN_PW, unique

REPO_ROOT = Path(__file__).resolve().parents[3]


def hanami_bin() -> Path:
    """Path of the server binary."""
    path = Path(os.environ.get("HANAMI_BIN", "target/debug/hanami"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


@dataclass
class Server:
    """A running server process."""

    url: str
    process: subprocess.Popen
    data_dir: Path
    #: The thread that reads the server's stdout (it ends with the process).
    reader: threading.Thread

    def stop(self) -> None:
        """Stops the server with SIGTERM (SIGKILL after 10 s), and closes its stdout once
        read to the end (an open one would be reported as unclosed by whichever later test
        collects garbage while it watches for ``ResourceWarning``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=10)
        if self.process.stdout is not None and not self.reader.is_alive():
            self.process.stdout.close()


def start_server(data_dir: Path, extra_args: Sequence[str] = (),
                 admin_name: str = "the admin", listen: str = "127.0.0.1:0",
                 pause_at: Optional[str] = None, fail_at: Optional[str] = None) -> Server:
    """Starts ``hanami`` and waits for the first stdout line, its base URL. ``admin_name``
    is the display name of the admin ``asdf``; ``listen`` the address to serve on (a free
    loopback port by default); ``pause_at`` (``<point>=<milliseconds>``) where a debug build
    of the server holds up what reaches that point, ``fail_at`` where what it does there
    fails."""
    binary = hanami_bin()
    if not binary.is_file():
        pytest.exit(f"server binary {binary} not found; build it with "
                    "`cargo build -p hanami-server --bin hanami` or set HANAMI_BIN", 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANAMI_")}
    env.update(HANAMI_ADMIN_USER_ID=ADMIN, HANAMI_ADMIN_USER_NAME=admin_name,
               HANAMI_ADMIN_PASSWORD=ADMIN_PW, RUST_LOG="warn")
    if pause_at is not None:
        env["HANAMI_PAUSE_AT"] = pause_at
    if fail_at is not None:
        env["HANAMI_FAIL_AT"] = fail_at
    command: List[str] = [str(binary), "--listen", listen, "--data-dir",
                          str(data_dir), *extra_args]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "server.log", "ab")
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    lines: "queue.Queue[Optional[str]]" = queue.Queue()

    def read_stdout() -> None:
        assert process.stdout is not None
        first = True
        for line in process.stdout:
            if first:
                lines.put(line.strip())
                first = False
        if first:
            lines.put(None)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        url = lines.get(timeout=30)
    except queue.Empty:
        url = None
    if not url:
        process.kill()
        process.wait()
        output = (data_dir.parent / "server.log").read_text(errors="replace")
        raise RuntimeError(f"hanami did not start: {' '.join(command)}\n{output}")
    return Server(url=url, process=process, data_dir=data_dir, reader=reader)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server shared by most tests."""
    running = start_server(tmp_path_factory.mktemp("hanami") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def address(server: Server) -> str:
    """Base address of the shared server, e.g. ``http://127.0.0.1:40123``."""
    return server.url


@pytest.fixture(scope="session")
def token(address: str) -> str:
    """An admin token for the shared server."""
    return hanami_token.request_token(address, ADMIN, ADMIN_PW)


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for generated input files."""
    return tmp_path_factory.mktemp("files")


@dataclass
class Member:
    """A non-admin user with a project."""

    user_id: str
    password: str
    project_id: str
    token: str


@pytest.fixture
def member(address: str, token: str) -> Iterator[Member]:
    """A fresh member user assigned to a fresh project (role ``member``)."""
    project_id = unique("proj")
    user_id = unique("member")
    password = "member password"
    project.create_project(token, address, project_id, "Member Project")
    user.create_user(token, address, user_id, "Member User", password, False)
    user.add_roject_to_user(token, address, user_id, project_id, "member", False)
    member_token = hanami_token.request_token(address, user_id, password)
    yield Member(user_id, password, project_id, member_token)
    user.delete_user(token, address, user_id)
    project.delete_project(token, address, project_id)
