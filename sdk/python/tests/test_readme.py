"""The quick start of this package's README runs as written, also through a restart of the
server in the middle of its training."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import List

from hanami_sdk import cluster, hanami_token, task

from conftest import REPO_ROOT, Server, start_server
from helpers import ADMIN, ADMIN_PW, pattern_mnist, rows


def quick_start() -> str:
    """The first Python block of the README."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert match, "no quick start in the README"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def repeated(path: str, header: int, times: int) -> None:
    """Makes the IDX file at `path` hold its items `times` over (count patched)."""
    data = Path(path).read_bytes()
    count = int.from_bytes(data[4:8], "big") * times
    Path(path).write_bytes(data[:4] + count.to_bytes(4, "big") + data[8:header]
                           + data[header:] * times)


def test_quick_start_runs_through_a_restart(tmp_path: Path, monkeypatch) -> None:
    port = free_port()
    data_dir = tmp_path / "server" / "data"
    listen = f"127.0.0.1:{port}"
    server: Server = start_server(data_dir, listen=listen)
    try:
        work = tmp_path / "work"
        (work / "docs").mkdir(parents=True)
        shutil.copy(REPO_ROOT / "docs" / "cluster_template", work / "docs")
        images, labels = pattern_mnist(work, "train", 2000)
        repeated(images, 16, 15)
        repeated(labels, 8, 15)
        pattern_mnist(work, "t10k", 500, seed=999)
        monkeypatch.chdir(work)
        # A user's script: its own address, and the admin of the test servers.
        code = quick_start().replace("http://127.0.0.1:11418", server.url)
        code = code.replace('"asdf", "asdfasdf"', f'"{ADMIN}", "{ADMIN_PW}"')
        printed: List[str] = []
        failure: List[BaseException] = []

        def show(*values: object) -> None:
            printed.append(" ".join(map(str, values)))

        def run() -> None:
            try:
                exec(code, {"print": show})
            except BaseException as e:  # reported by the test below
                failure.append(e)

        script = threading.Thread(target=run)
        script.start()
        # Once the training runs, the server restarts on the same address.
        token = hanami_token.request_token(server.url, ADMIN, ADMIN_PW)
        deadline = time.monotonic() + 120
        train = None
        while train is None:
            assert time.monotonic() < deadline and script.is_alive(), failure
            for uuid in [row[1] for row in rows(cluster.list_clusters(token, server.url))]:
                tasks = rows(task.list_tasks(token, server.url, uuid))
                active = [row for row in tasks if row[1] == "active" and float(row[2]) > 0]
                if active:
                    train = (uuid, active[0][0])
            time.sleep(0.01)
        server.stop()
        # Down for longer than the loop's pause: it polls while nothing answers.
        time.sleep(2.5)
        server = start_server(data_dir, listen=listen)
        script.join(timeout=300)
        assert not script.is_alive(), "the quick start did not end"
        assert not failure, failure
        # It printed the accuracy of the request task's result.
        assert len(printed) == 1 and 0.0 <= float(printed[0]) <= 100.0, printed
        # The training was stopped part of the way, and went on after the restart.
        info = json.loads(task.get_task(token, server.url, train[1], train[0]))
        assert info["state"] == "finished", info
        assert info["note"].endswith("and it went on from there at the next start"), info
    finally:
        server.stop()
