"""Dataset functions: MNIST and CSV uploads over the websocket, get/list/delete, progress,
errors."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import mmap
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, List

import pytest
import requests

from hanami_sdk import dataset, hanami_request, hanami_token, project, user
from hanami_sdk import hanami_exceptions as hx

from conftest import Member
from helpers import ADMIN, ADMIN_PW, AnswerDroppingProxy, pattern_mnist, rows, unique

MISSING = "8a1b2c3d-0000-4000-8000-123456789abc"


def test_mnist_upload_get_list_delete(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_a", 300)  # 235 KiB: two chunks
    name = unique("train_test_dataset")
    seen = []
    uuid = dataset.upload_mnist_files(token, address, name, images, labels,
                                      progress=lambda done, total: seen.append((done, total)))
    assert isinstance(uuid, str) and len(uuid) == 36
    total = os.path.getsize(images) + os.path.getsize(labels)
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) == 3  # two image chunks, one label chunk

    info = json.loads(dataset.get_dataset(token, address, uuid))
    assert info["uuid"] == uuid and info["name"] == name
    assert info["number_of_rows"] == 300 and info["number_of_columns"] == 794
    assert info["description"] == {"picture": {"start_column": 0, "end_column": 784},
                                   "label": {"start_column": 784, "end_column": 794}}
    assert info["owner_id"] == ADMIN and info["visibility"] == "private"

    listed = json.loads(dataset.list_datasets(token, address))
    assert listed["header"] == ["created_at", "uuid", "project_id", "owner_id",
                                "visibility", "name"]
    assert [uuid, name] in [[row[1], row[-1]] for row in listed["body"]]

    with pytest.raises(hx.BadRequestException):
        dataset.get_dataset(token, address, "fail_dataset")
    with pytest.raises(hx.NotFoundException):
        dataset.get_dataset(token, address, MISSING)

    assert json.loads(dataset.delete_dataset(token, address, uuid)) == {}
    with pytest.raises(hx.NotFoundException):
        dataset.delete_dataset(token, address, uuid)
    with pytest.raises(hx.NotFoundException):
        dataset.get_dataset(token, address, uuid)


def test_delete_dataset_old_keyword(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_kw", 10)
    uuid = dataset.upload_mnist_files(token, address, unique("kw_dataset"), images, labels)
    with pytest.raises(TypeError, match="different values"):
        dataset.delete_dataset(token, address, MISSING, checkpoint_uuid=uuid)
    assert dataset.delete_dataset(token, address, uuid, checkpoint_uuid=uuid) == "{}"
    with pytest.raises(hx.NotFoundException):
        dataset.delete_dataset(token, address, checkpoint_uuid=uuid)
    with pytest.raises(TypeError):
        dataset.delete_dataset(token, address)


def test_invalid_mnist_files(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_bad", 20)
    with pytest.raises(hx.BadRequestException) as info:
        # image and label file swapped
        dataset.upload_mnist_files(token, address, unique("swapped"), labels, images)
    assert info.value.message
    with pytest.raises(FileNotFoundError):
        dataset.upload_mnist_files(token, address, unique("missing"), images,
                                   str(files / "does-not-exist"))
    empty = files / "empty-file"
    empty.write_bytes(b"")
    with pytest.raises(hx.BadRequestException):
        dataset.upload_mnist_files(token, address, unique("empty"), images, str(empty))
    with pytest.raises(hx.BadRequestException):
        dataset.upload_mnist_files(token, address, "x", images, labels)  # name too short


def test_csv_upload(address: str, token: str, files: Path) -> None:
    path = files / "test-file.csv"
    lines = ["test_input,test_output"] + [f"{i},{(i % 4) / 4}" for i in range(1095)]
    path.write_text("\r\n".join(lines) + "\r\n")
    name = unique("csv_dataset")
    uuid = dataset.upload_csv_files(token, address, name, str(path))
    info = json.loads(dataset.get_dataset(token, address, uuid))
    assert info["name"] == name
    assert info["number_of_rows"] == 1095 and info["number_of_columns"] == 2
    assert info["description"] == {"test_input": {"start_column": 0, "end_column": 1},
                                   "test_output": {"start_column": 1, "end_column": 2}}
    # Its rows read back, in parts.
    rows = json.loads(dataset.get_dataset_rows(token, address, uuid, 1093, 5))
    assert rows["start"] == 1093 and rows["number_of_rows"] == 1095
    assert rows["rows"] == [[1093, 0.25], [1094, 0.5]]
    with pytest.raises(hx.BadRequestException):
        dataset.get_dataset_rows(token, address, uuid, 1096, 1)
    dataset.delete_dataset(token, address, uuid)


def test_invalid_csv(address: str, token: str, files: Path) -> None:
    path = files / "bad.csv"
    path.write_text("a,b\n1,2\n3,not_a_number\n")
    with pytest.raises(hx.BadRequestException) as info:
        dataset.upload_csv_files(token, address, unique("bad_csv"), str(path))
    assert "line" in info.value.message
    empty = files / "empty.csv"
    empty.write_text("")
    with pytest.raises(hx.BadRequestException) as info:
        dataset.upload_csv_files(token, address, unique("empty_csv"), str(empty))
    assert info.value.message == f"{empty}: the file is empty"


def test_upload_inside_a_running_event_loop(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_loop", 20)

    async def main() -> str:
        return dataset.upload_mnist_files(token, address, unique("in_loop"), images, labels)

    uuid = asyncio.run(main())
    assert json.loads(dataset.get_dataset(token, address, uuid))["number_of_rows"] == 20
    dataset.delete_dataset(token, address, uuid)


def upload_interrupted_after_first_chunk(address: str, token: str, files: Path, tag: str):
    """An upload (a coroutine function) whose progress callback sends Ctrl-C to the calling
    thread after the first of its 18 image chunks; returns it, the chunks the callback saw
    and the dataset's name."""
    images, labels = pattern_mnist(files, f"ds_{tag}", 3000)
    main_thread = threading.get_ident()
    seen: list[int] = []

    def interrupt_the_caller(done: int, _total: int) -> None:
        seen.append(done)
        if len(seen) == 1:
            signal.pthread_kill(main_thread, signal.SIGINT)
        time.sleep(0.05)  # the caller gets the signal while chunks remain

    name = unique(tag)

    async def main() -> None:
        dataset.upload_mnist_files(token, address, name, images, labels,
                                   progress=interrupt_the_caller)

    return main, seen, name


def test_ctrl_c_inside_a_running_event_loop_stops_the_upload(address: str, token: str,
                                                              files: Path) -> None:
    """There the chunks go out from a worker thread; Ctrl-C in the calling thread stops it
    at the next chunk instead of waiting for the whole file."""
    main, seen, name = upload_interrupted_after_first_chunk(address, token, files,
                                                            "in_loop_ctrl_c")
    # A loop as a notebook runs it: without asyncio.run's own SIGINT handler, which defers
    # Ctrl-C until the running step returns.
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
    finally:
        loop.close()
    assert len(seen) <= 3, f"{len(seen)} chunks went out after Ctrl-C"
    assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))


def test_ctrl_c_under_asyncio_run_stops_the_upload(address: str, token: str,
                                                  files: Path) -> None:
    """Under ``asyncio.run`` (Python 3.11 and later) Ctrl-C cancels the main task instead of
    raising in it: the upload stops at the next chunk all the same, and is withdrawn (it
    used to run to its end and make the dataset, whose uuid was lost)."""
    main, seen, name = upload_interrupted_after_first_chunk(address, token, files, "run_ctrl_c")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert len(seen) <= 6, f"{len(seen)} chunks went out after Ctrl-C"
    assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))


def test_a_failing_progress_callback_leaves_no_file_open(address: str, token: str,
                                                         files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_failing_progress", 300)  # two image chunks

    def fail(_done: int, _total: int) -> None:
        raise ZeroDivisionError("the caller's bug")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        # Not `pytest.raises`: its record of the exception would keep the file alive.
        failed = False
        try:
            dataset.upload_mnist_files(token, address, unique("failing"), images, labels,
                                       progress=fail)
        except ZeroDivisionError:
            failed = True
        assert failed
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    # A progress that is no function is refused before anything is registered.
    name = unique("not_callable")
    with pytest.raises(TypeError, match="progress must be a function"):
        dataset.upload_mnist_files(token, address, name, images, labels,
                                   progress=5)  # type: ignore[arg-type]
    assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))
    # So is a file named by something else than a path (an int names an open descriptor).
    with pytest.raises(TypeError, match="got int"):
        dataset.upload_mnist_files(token, address, name, images,
                                   3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got NoneType"):
        dataset.upload_csv_files(token, address, name, None)  # type: ignore[arg-type]
    assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))


def test_a_file_that_changes_while_it_is_sent_fails_at_once(address: str, token: str,
                                                            files: Path) -> None:
    csv_file = files / "changing.csv"
    row = "1," * 999 + "1\n"
    whole = "c" + ",c".join(str(i) for i in range(1000)) + "\n" + row * 3000  # 6 MB
    for change, needle in [(lambda f: f.write_text(whole[:300_000]), "it ended after"),
                           (lambda f: f.write_text(whole + row * 10), "it grew beyond")]:
        csv_file.write_text(whole)
        name = unique("changing")
        changed = []

        def change_once(_done: int, _total: int) -> None:
            if not changed:
                changed.append(True)
                change(csv_file)

        started = time.monotonic()
        with pytest.raises(OSError, match=f"changed while it was sent: .*{needle}"):
            dataset.upload_csv_files(token, address, name, str(csv_file),
                                     progress=change_once)
        assert time.monotonic() - started < 30
        assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))


def test_an_upload_whose_token_is_revoked_names_what_it_left(address: str, token: str,
                                                              member: Member,
                                                              files: Path) -> None:
    """A role change while an upload runs (the assignment removed and made anew) revokes
    its token: the upload fails, and since the server could not be asked to discard what
    had arrived with that token, the error names the dataset to delete (it was left
    unnamed, holding its disk space and the user's deletion until the upload_timeout)."""
    csv_file = files / f"{unique('revoked')}.csv"
    csv_file.write_text("a,b\n" + "0.5,1\n" * 60_000)  # more than two chunks
    changed: List[bool] = []

    def change_role(_done: int, _total: int) -> None:
        if not changed:
            changed.append(True)
            user.remove_project_fromUser(token, address, member.user_id, member.project_id)
            user.add_roject_to_user(token, address, member.user_id, member.project_id,
                                    "member", False)

    with pytest.raises(hx.UnauthorizedException) as refused:
        dataset.upload_csv_files(member.token, address, unique("revoked"), str(csv_file),
                                 progress=change_role)
    message = refused.value.message
    assert "taken out of project" in message, message
    left = re.search(r"\(upload of dataset '([0-9a-f-]{36})' stopped: the server could not be "
                     r"asked to discard", message)
    assert left is not None and "dataset.delete_dataset" in message, message
    # After a restart of the server it is gone, which the deletion's 404 then means.
    assert "when it stops or starts" in message and "gone already" in message, message
    assert str(refused.value) == message
    # As it says: a fresh token cancels the upload, and the user can go.
    fresh = hanami_token.request_token(address, member.user_id, member.password)
    dataset.delete_dataset(fresh, address, left.group(1))


def test_pipes_and_folders_are_refused_before_the_server_is_asked(address: str, token: str,
                                                                   files: Path) -> None:
    pipe = files / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="not a regular file") as refused:
        dataset.upload_csv_files(token, address, unique("piped"), str(pipe))
    assert not isinstance(refused.value, hx.HanamiException)
    with pytest.raises(IsADirectoryError, match="is a directory") as refused:
        dataset.upload_mnist_files(token, address, unique("folder"), files, str(pipe))
    assert refused.value.filename == str(files)


def test_an_unreadable_file_is_refused_before_the_server_is_asked(address: str) -> None:
    # A file others may find but not read, in a folder they may enter; the upload runs in a
    # child process that is not root (root reads any file). Its token is refused by the
    # server, so any request would end the upload with an UnauthorizedException first.
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # not $TMPDIR: others must reach it
    try:
        folder.chmod(0o755)
        secret = folder / "secret.csv"
        secret.write_text("a,b\n1,2\n")
        secret.chmod(0)
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover (the child reports through the pipe)
            outcome = "nothing raised"
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                dataset.upload_csv_files("not-a-token", address, unique("unreadable"),
                                         str(secret))
            except BaseException as e:  # noqa: BLE001 - everything is reported
                outcome = f"{type(e).__name__}: {e}"
            os.write(write_end, outcome.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            outcome = pipe.read().decode()
        os.waitpid(child, 0)
        assert outcome == f"PermissionError: [Errno 13] Permission denied: '{secret}'", outcome
    finally:
        shutil.rmtree(folder)


def test_uploads_read_and_write_the_socket_on_one_thread(address: str, token: str,
                                                         files: Path) -> None:
    # A reader thread next to the writing caller (the threaded websockets client) breaks TLS
    # sockets now and then; the upload must not start one.
    images, labels = pattern_mnist(files, "ds_threads", 200)
    before = threading.active_count()
    during = []
    uuid = dataset.upload_mnist_files(
        token, address, unique("one_thread"), images, labels,
        progress=lambda done, total: during.append(threading.active_count()))
    assert during and max(during) == before
    dataset.delete_dataset(token, address, uuid)


def test_send_data_and_progress_step_by_step(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_steps", 200)
    image_bytes, label_bytes = Path(images).read_bytes(), Path(labels).read_bytes()
    init = json.loads(hanami_request.send_post_request(
        token, address, "/v1.0alpha/dataset/upload/mnist",
        {"name": unique("steps"), "input_data_size": len(image_bytes),
         "label_data_size": len(label_bytes)}))
    uuid = init["uuid"]

    progress = json.loads(dataset.get_upload_progress(token, address, uuid))
    assert progress == {"uuid": uuid, "complete": False}
    with pytest.raises(TimeoutError):
        dataset.wait_until_upload_complete(token, address, uuid, poll_interval=0.05,
                                           timeout=0.2)

    async def send() -> None:
        assert await dataset.send_data(token, address, uuid, init["uuid_input_file"],
                                       image_bytes)
        # A memory-mapped file holds the bytes too, as the original SDK took it.
        with open(labels, "rb") as file, \
                mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            assert await dataset.send_data(token, address, uuid, init["uuid_label_file"],
                                           mapped)
        # an unknown file uuid: the session is refused
        assert not await dataset.send_data(token, address, uuid, MISSING, b"abc")
        # data that holds no bytes: refused in words before anything is sent
        for wrong in (None, "a,b\n1,2\n", [1, 2]):
            with pytest.raises(TypeError, match="^data must be the file's bytes"):
                await dataset.send_data(token, address, uuid, init["uuid_input_file"],
                                        wrong)  # type: ignore[arg-type]

    asyncio.run(send())
    assert dataset.wait_until_upload_complete(token, address, uuid) is True
    hanami_request.send_put_request(token, address, "/v1.0alpha/dataset/upload/mnist",
                                    {"uuid": uuid, "uuid_input_file": init["uuid_input_file"],
                                     "uuid_label_file": init["uuid_label_file"]})
    assert json.loads(dataset.get_dataset(token, address, uuid))["number_of_rows"] == 200
    dataset.delete_dataset(token, address, uuid)


def test_chunk_beyond_declared_size(address: str, token: str) -> None:
    init = json.loads(hanami_request.send_post_request(
        token, address, "/v1.0alpha/dataset/upload/csv",
        {"name": unique("too_big"), "input_data_size": 10}))

    async def send() -> None:
        await dataset.send_data(token, address, init["uuid"], init["uuid_input_file"],
                                b"a,b\n1,2\n3,4\n5,6\n")

    with pytest.raises(hx.BadRequestException):
        asyncio.run(send())


def test_check_errors(address: str, token: str, files: Path) -> None:
    images, labels = pattern_mnist(files, "ds_check", 10)
    uuid = dataset.upload_mnist_files(token, address, unique("check_ref"), images, labels)
    with pytest.raises(hx.NotFoundException):
        dataset.check_mnist_dataset(token, address, uuid, MISSING)
    with pytest.raises(hx.BadRequestException):
        dataset.check_dataset(token, address, uuid, "fail_dataset")
    dataset.delete_dataset(token, address, uuid)


def test_member_sees_only_own_datasets(address: str, token: str, files: Path,
                                       member) -> None:
    images, labels = pattern_mnist(files, "ds_member", 10)
    own = dataset.upload_mnist_files(member.token, address, unique("member_set"), images,
                                     labels)
    admin_set = dataset.upload_mnist_files(token, address, unique("admin_set"), images,
                                           labels)
    visible = {row[1] for row in rows(dataset.list_datasets(member.token, address))}
    assert own in visible and admin_set not in visible
    with pytest.raises(hx.NotFoundException):
        dataset.get_dataset(member.token, address, admin_set)
    # a project that still owns datasets cannot be deleted
    with pytest.raises(hx.ConflictException):
        project.delete_project(token, address, member.project_id)
    dataset.delete_dataset(member.token, address, own)
    dataset.delete_dataset(token, address, admin_set)


def test_an_upload_whose_dataset_is_deleted_raises_not_found(address: str, token: str,
                                                              files: Path) -> None:
    """Deleting an unfinished upload's dataset (from anywhere) cancels it: the uploading call
    raises ``NotFoundException``, as for anything else that is gone, and nothing is left."""
    csv_file = files / "deleted_meanwhile.csv"
    csv_file.write_text("a,b\n" + "1,2\n" * 100_000)  # 400 KiB: four chunks
    name = unique("deleted_meanwhile")
    deleted: List[str] = []

    def delete_it(_done: int, _total: int) -> None:
        if not deleted:
            listed = rows(dataset.list_datasets(token, address))
            uuid = next(row[1] for row in listed if row[-1] == name)
            dataset.delete_dataset(token, address, uuid)
            deleted.append(uuid)

    with pytest.raises(hx.NotFoundException,
                       match="^the upload was cancelled, expired or finished$"):
        dataset.upload_csv_files(token, address, name, str(csv_file), progress=delete_it)
    assert len(deleted) == 1
    assert all(row[-1] != name for row in rows(dataset.list_datasets(token, address)))


def test_an_upload_whose_user_loses_access_raises_unauthorized(address: str, token: str,
                                                               files: Path) -> None:
    """An upload whose user is taken out of its project ends as a direct-IO session does,
    with ``UnauthorizedException`` ("access withdrawn: …")."""
    user_id, project_id = unique("leaving"), unique("left_proj")
    project.create_project(token, address, project_id, "Left Project")
    user.create_user(token, address, user_id, "Leaving User", "leaving password")
    user.add_roject_to_user(token, address, user_id, project_id, "member")
    member_token = hanami_token.request_token(address, user_id, "leaving password")
    csv_file = files / "withdrawn.csv"
    csv_file.write_text("a,b\n" + "1,2\n" * 100_000)  # 400 KiB: four chunks
    removed: List[bool] = []

    def remove_member(_done: int, _total: int) -> None:
        if not removed:
            user.remove_project_fromUser(token, address, user_id, project_id)
            removed.append(True)
            time.sleep(1.1)  # an open session checks its access again once a second

    with pytest.raises(hx.UnauthorizedException, match="^access withdrawn: "):
        dataset.upload_csv_files(member_token, address, unique("withdrawn"), str(csv_file),
                                 progress=remove_member)
    user.delete_user(token, address, user_id)
    project.delete_project(token, address, project_id)


def test_interrupted_uploads_are_discarded(address: str, token: str, files: Path) -> None:
    """An upload stopped by an exception in the middle (Ctrl-C included) is withdrawn from
    the server: the user and project it belonged to can be deleted right away."""
    project_id, user_id = unique("proj_upl"), unique("user_upl")
    project.create_project(token, address, project_id, "Upload Project")
    user.create_user(token, address, user_id, "Upload User", "upload password", False)
    user.add_roject_to_user(token, address, user_id, project_id, "member", False)
    member_token = hanami_token.request_token(address, user_id, "upload password")
    images, labels = pattern_mnist(files, "ds_interrupted", 300)  # two image chunks
    csv_file = files / "interrupted.csv"
    csv_file.write_text("a,b\n" + "1,2\n" * 100_000)  # 400 KiB: four chunks

    def interrupt(_done: int, _total: int) -> None:
        raise KeyboardInterrupt

    def fail(_done: int, _total: int) -> None:
        raise RuntimeError("the caller gave up")

    with pytest.raises(KeyboardInterrupt) as interrupted:
        dataset.upload_mnist_files(member_token, address, unique("interrupted"), images,
                                   labels, progress=interrupt)
    if sys.version_info >= (3, 11):  # notes under the traceback came with 3.11
        notes = getattr(interrupted.value, "__notes__", [])
        assert len(notes) == 1 and notes[0].endswith(
            "stopped: the server discarded what had arrived"), notes
    with pytest.raises(RuntimeError):
        dataset.upload_csv_files(member_token, address, unique("interrupted"),
                                 str(csv_file), progress=fail)
    assert rows(dataset.list_datasets(member_token, address)) == []
    assert json.loads(user.delete_user(token, address, user_id)) == {}
    assert json.loads(project.delete_project(token, address, project_id)) == {}


def test_a_lost_finalisation_answer_keeps_the_dataset(address: str, token: str,
                                                      files: Path) -> None:
    """Once the finalisation is requested the server makes the dataset: when its answer is
    lost on the way, the error says that the dataset may still appear and names it, and
    the SDK does not delete it."""
    proxy = AnswerDroppingProxy(address, b"PUT /v1.0alpha/dataset/upload/")
    csv_file = files / "lost_answer.csv"
    csv_file.write_text("a,b\n1,2\n3,4\n")
    images, labels = pattern_mnist(files, "lost_answer", 20)
    try:
        with pytest.raises(requests.exceptions.ConnectionError) as csv_error:
            dataset.upload_csv_files(token, proxy.address, unique("lost_answer"),
                                     str(csv_file))
        with pytest.raises(requests.exceptions.ConnectionError) as mnist_error:
            dataset.upload_mnist_files(token, proxy.address, unique("lost_answer"), images,
                                       labels)
    finally:
        proxy.close()
    assert proxy.dropped == 2
    for error in (csv_error.value, mnist_error.value):
        text = str(error)
        assert "did not answer its finalisation" in text, text
        uuid = text.split("register the dataset as '")[1].split("'")[0]
        got = json.loads(dataset.get_dataset(token, address, uuid))
        assert got["uuid"] == uuid
        dataset.delete_dataset(token, address, uuid)
    # A finalisation that could not even connect is not said to have reached the server.
    with pytest.raises(requests.exceptions.ConnectionError) as unreachable:
        hanami_request.send_put_request(token, proxy.address, "/v1.0alpha/dataset/upload/csv",
                                        {})
    assert dataset._never_sent(unreachable.value)  # pylint: disable=protected-access
    # The dropped answer's own error (before the SDK added its note) counts as sent.
    assert not dataset._never_sent(csv_error.value.__cause__)  # pylint: disable=protected-access


@contextlib.contextmanager
def _short_token_member(data_dir: Path, user_id: str, password: str) -> Iterator[str]:
    """A server whose tokens last 2 s, with the member ``user_id`` in a project of its own
    (``<user_id>_project``); yields the server's address."""
    from conftest import start_server  # pylint: disable=import-outside-toplevel
    server = start_server(data_dir, ["--token-expiry", "2"])
    try:
        address = server.url
        admin = hanami_token.request_token(address, ADMIN, ADMIN_PW)
        project_id = f"{user_id}_project"
        project.create_project(admin, address, project_id, "Short Tokens")
        user.create_user(admin, address, user_id, user_id.title(), password, False)
        user.add_roject_to_user(admin, address, user_id, project_id, "member", False)
        yield address
    finally:
        server.stop()


def _chunks(path: Path) -> int:
    return -(-path.stat().st_size // dataset.CHUNK_SIZE)


def test_uploads_outlive_their_token(tmp_path: Path) -> None:
    """An upload that takes longer than the token has left renews the token for itself,
    in the same project, between chunks and before each step (it failed at the next step
    and left an unfinished upload behind that blocked deleting its user and project)."""
    path = tmp_path / "slow.csv"
    path.write_text("x,y\n" + "".join(f"{i % 97},{i % 2}\n" for i in range(300_000)))
    chunks = _chunks(path)
    assert chunks >= 10

    def slowly(_done: int, _total: int) -> None:
        time.sleep(4.5 / chunks)

    with _short_token_member(tmp_path / "data", "uploader", "uploader pw") as address:
        token = hanami_token.request_token(address, "uploader", "uploader pw")
        started = time.monotonic()
        uuid = dataset.upload_csv_files(token, address, "slow_upload", str(path),
                                        progress=slowly)
        assert time.monotonic() - started > 4.0
        # The caller's token is expired now; the upload is done all the same.
        with pytest.raises(hx.UnauthorizedException):
            dataset.list_datasets(token, address)
        fresh = hanami_token.request_token(address, "uploader", "uploader pw")
        info = json.loads(dataset.get_dataset(fresh, address, uuid))
        assert info["number_of_rows"] == 300_000
        assert info["project_id"] == "uploader_project"


def test_an_upload_renews_a_token_about_to_expire_before_it_starts(tmp_path: Path) -> None:
    """A token with moments left (the server accepts one until a second after its expiry)
    is renewed before the upload starts: it used to expire between the upload's start and
    its first file, which failed the upload and left it unfinished on the server, where it
    blocked deleting its user and project."""
    import base64  # pylint: disable=import-outside-toplevel
    path = tmp_path / "late.csv"
    path.write_text("x,y\n" + "".join(f"{i % 97},{i % 2}\n" for i in range(200_000)))
    chunks = _chunks(path)

    def slowly(_done: int, _total: int) -> None:  # the upload takes about half a second
        time.sleep(0.5 / chunks)

    with _short_token_member(tmp_path / "data", "late", "late password") as address:
        for attempt in range(3):
            token = hanami_token.request_token(address, "late", "late password")
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            # 300 ms before the server stops accepting it (a second after its expiry).
            time.sleep(max(0.0, claims["exp"] + 0.7 - time.time()))
            dataset.upload_csv_files(token, address, f"late_{attempt}", str(path),
                                     progress=slowly)
        fresh = hanami_token.request_token(address, "late", "late password")
        assert len(rows(dataset.list_datasets(fresh, address))) == 3
        assert list((tmp_path / "data" / "uploads").iterdir()) == []


def test_a_failed_renewal_keeps_the_token() -> None:
    """Renewing is best effort: a server that cannot be reached (or refuses) leaves the
    upload with the token it has, instead of failing an upload that may still finish."""
    import base64  # pylint: disable=import-outside-toplevel
    from hanami_sdk._renewal import TokenKeeper  # pylint: disable=import-outside-toplevel

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"exp": int(time.time()) - 1, "user": json.dumps({"project_id": "some_proj"})}
    token = f"{part({'alg': 'HS256'})}.{part(claims)}.signature"
    keeper = TokenKeeper(token, "http://127.0.0.1:9", True)
    started = time.monotonic()
    assert keeper.current() == token
    assert keeper._renew_at is None  # pylint: disable=protected-access
    assert keeper.current() == token  # and it does not try again and again
    assert time.monotonic() - started < 5
    # A token that is no JWT is used as it is, without a renewal attempt.
    assert TokenKeeper("opaque", "http://127.0.0.1:9", True).current() == "opaque"


def test_a_refused_websocket_opening_raises_the_servers_words(tmp_path: Path) -> None:
    """While eight sessions of this client wait for their first message (the most the server
    lets one client have), an upload's opening waits for its turn, and is refused with a 429
    when it does not come within the server's header_timeout; the SDK raises it with the
    server's text, as for a REST answer of that status (it said to check the address)."""
    import websockets.sync.client  # pylint: disable=import-outside-toplevel
    from conftest import start_server  # pylint: disable=import-outside-toplevel

    config = tmp_path / "hanami.toml"
    config.write_text("header_timeout = 1\n")
    server = start_server(tmp_path / "data", ["--config", str(config)])
    try:
        token = hanami_token.request_token(server.url, ADMIN, ADMIN_PW)
        csv_file = tmp_path / "opening_refused.csv"
        csv_file.write_text("a,b\n1,2\n")
        url = server.url.replace("http://", "ws://", 1)
        with contextlib.ExitStack() as waiting:
            for _ in range(8):
                waiting.enter_context(websockets.sync.client.connect(url))
            with pytest.raises(hx.HanamiException) as info:
                dataset.upload_csv_files(token, server.url, "opening_refused", str(csv_file))
        assert info.value.status_code == 429
        assert str(info.value).startswith(
            "status 429: Too many websocket sessions are waiting for their first message")
    finally:
        server.stop()


def test_an_upload_cut_off_by_a_shutdown_says_so(tmp_path: Path) -> None:
    """A server that stops while an upload sends its chunks ends the session with its word
    for it; the SDK raises what a REST call answered with 503 raises (a temporary state of
    the server, not a bad request), so that retrying code can tell."""
    from conftest import start_server  # pylint: disable=import-outside-toplevel

    server = start_server(tmp_path / "data")
    try:
        token = hanami_token.request_token(server.url, ADMIN, ADMIN_PW)
        init = json.loads(hanami_request.send_post_request(
            token, server.url, "/v1.0alpha/dataset/upload/csv",
            {"name": "cut_off", "input_data_size": 1000}, True))

        def chunks() -> Iterator[bytes]:
            yield b"a,b\n"
            server.process.send_signal(signal.SIGTERM)
            # Rows until the stop reaches the session (well within the declared size).
            for _ in range(200):
                time.sleep(0.05)
                yield b"1,2\n"

        with pytest.raises(hx.HanamiException) as info:
            asyncio.run(dataset._send_chunks(  # pylint: disable=protected-access
                token, server.url, init["uuid_input_file"], chunks(), True))
        assert type(info.value) is hx.HanamiException
        assert (info.value.status_code, info.value.message) == (
            503, "status 503: the server is shutting down")
    finally:
        server.stop()


def test_ctrl_c_while_an_upload_is_registered_withdraws_it(tmp_path: Path) -> None:
    """Ctrl-C while the request that registers an upload waits for its answer: the upload
    that the answer names is withdrawn before the interruption goes on (it stayed until the
    server's upload_timeout, counting against the user's unfinished uploads)."""
    from conftest import start_server  # pylint: disable=import-outside-toplevel

    server = start_server(tmp_path / "data", pause_at="upload:registered=1500")
    try:
        token = hanami_token.request_token(server.url, ADMIN, ADMIN_PW)
        csv_file = tmp_path / "early.csv"
        csv_file.write_text("a,b\n1,2\n")
        log = tmp_path / "server.log"
        main_thread = threading.get_ident()

        def interrupt_when_held() -> None:
            deadline = time.monotonic() + 10
            while "pausing at upload:registered" not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
            signal.pthread_kill(main_thread, signal.SIGINT)

        threading.Thread(target=interrupt_when_held, daemon=True).start()
        with pytest.raises(KeyboardInterrupt) as interrupted:
            dataset.upload_csv_files(token, server.url, "early", str(csv_file))
        if sys.version_info >= (3, 11):  # notes under the traceback came with 3.11
            notes = getattr(interrupted.value, "__notes__", [])
            assert len(notes) == 1 and notes[0].startswith("upload of dataset '") \
                and notes[0].endswith("' stopped while it was being registered: the server "
                                      "discarded what had arrived"), notes
        assert rows(dataset.list_datasets(token, server.url)) == []
        assert not list((tmp_path / "data" / "uploads").iterdir())
    finally:
        server.stop()
