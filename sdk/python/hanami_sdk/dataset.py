"""Datasets: upload MNIST and CSV files, inspect, delete and check request results."""

from __future__ import annotations

import asyncio
import contextlib
import concurrent.futures
import errno
import json
import os
import threading
import time
from typing import Any, Callable, Coroutine, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import requests
import urllib3
import websockets

from . import _websocket, hanami_request
from ._renewal import TokenKeeper
from .hanami_exceptions import (BadRequestException, ConflictException, HanamiException,
                                NotFoundException, UnauthorizedException)
from .hanami_messages import FileUploadMessage, FileUploadResponseMessage
from .hanami_request import Verify

_PATH = "/v1.0alpha/dataset"

#: Size of one upload chunk (one websocket message).
CHUNK_SIZE = 128 * 1024

#: A local file to upload: a ``str`` or a path object such as ``pathlib.Path``.
FilePath = Union[str, os.PathLike]

#: ``progress(bytes_sent, bytes_total)``, called after every acknowledged chunk.
ProgressCallback = Callable[[int, int], None]


def list_datasets(token: str, address: str, verify_connection: Verify = True) -> str:
    """Lists the visible datasets as JSON text ``{"header", "body"}``
    (columns ``created_at, uuid, project_id, owner_id, visibility, name``), then the
    visible unfinished uploads (not ready until finalised; deleting one cancels it)."""
    return hanami_request.send_get_request(token, address, _PATH + "/all", None,
                                           verify_connection)


def get_dataset(token: str, address: str, dataset_uuid: str,
                verify_connection: Verify = True) -> str:
    """Returns one dataset as JSON text (``uuid``, ``name``, ``version``,
    ``number_of_rows``, ``number_of_columns``, ``description`` (column groups),
    ``owner_id``, ``project_id``, ``visibility``, ``created_at``).

    ``BadRequestException`` for a malformed uuid, ``NotFoundException`` for an unknown one,
    ``ConflictException`` for an unfinished upload or a request result whose task has not
    ended (its data is not ready).
    """
    return hanami_request.send_get_request(token, address, _PATH, {"uuid": dataset_uuid},
                                           verify_connection)


def delete_dataset(token: str, address: str, dataset_uuid: Optional[str] = None,
                   verify_connection: Verify = True, *,
                   checkpoint_uuid: Optional[str] = None) -> str:
    """Deletes a dataset, or cancels an unfinished upload; returns ``{}``.
    ``NotFoundException`` if it does not exist, ``ConflictException`` while the upload is
    being made into the dataset or the request task that writes it has not ended.

    (The original SDK named the third parameter ``checkpoint_uuid``; that keyword is still
    accepted. Both with different values raise ``TypeError``.)
    """
    if (dataset_uuid is not None and checkpoint_uuid is not None
            and dataset_uuid != checkpoint_uuid):
        raise TypeError("delete_dataset() got different values for 'dataset_uuid' and "
                        "'checkpoint_uuid'")
    uuid = dataset_uuid if dataset_uuid is not None else checkpoint_uuid
    if uuid is None:
        raise TypeError("delete_dataset() missing the dataset uuid")
    return hanami_request.send_delete_request(token, address, _PATH, {"uuid": uuid},
                                              verify_connection)


def check_mnist_dataset(token: str, address: str, dataset_uuid: str, result_dataset_uuid: str,
                        verify_connection: Verify = True) -> str:
    """Compares a request result with the labels of a reference dataset.

    ``dataset_uuid`` is the reference (e.g. the MNIST test set the request ran on),
    ``result_dataset_uuid`` the result dataset (= the request task's uuid). Returns JSON
    text ``{"accuracy": <percent of correct rows>}``. ``NotFoundException`` for unknown
    datasets, ``ConflictException`` for an unfinished upload or a result whose request task
    has not ended, ``BadRequestException`` if their shapes do not match.
    """
    values = {"dataset_uuid": dataset_uuid, "result_uuid": result_dataset_uuid}
    return hanami_request.send_get_request(token, address, _PATH + "/check", values,
                                           verify_connection)


#: Correctly named alias of :func:`check_mnist_dataset`.
check_dataset = check_mnist_dataset


def get_dataset_rows(token: str, address: str, dataset_uuid: str, start: int, count: int,
                     verify_connection: Verify = True) -> str:
    """Returns up to ``count`` rows of a dataset from row ``start`` on (from 0), such as the
    values a request task wrote into its result (an addition to the original SDK), as JSON
    text ``{"uuid", "start", "number_of_rows", "number_of_columns", "rows"}``, ``rows`` a
    list of lists of numbers. Fewer rows come where the dataset ends (a large ``count`` asks
    for the rest); an answer holds at most 262,144 values (``BadRequestException`` beyond:
    read larger datasets in parts, e.g. ``262144 // number_of_columns`` rows at a time).
    """
    values = {"uuid": dataset_uuid, "start": start, "count": count}
    return hanami_request.send_get_request(token, address, _PATH + "/rows", values,
                                           verify_connection)


def get_upload_progress(token: str, address: str, uuid: str,
                        verify_connection: Verify = True) -> str:
    """Returns the upload state of a dataset as JSON text ``{"uuid", "complete"}``."""
    return hanami_request.send_get_request(token, address, _PATH + "/progress",
                                           {"uuid": uuid}, verify_connection)


def wait_until_upload_complete(token: str, address: str, uuid: str,
                               verify_connection: Verify = True, *, poll_interval: float = 0.5,
                               timeout: Optional[float] = None) -> bool:
    """Polls the upload progress of a dataset until all its files have arrived.

    Returns ``True``. With ``timeout`` (seconds) raises ``TimeoutError`` when the upload is
    still incomplete after that time; by default it waits as long as it takes.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        progress = _answer(get_upload_progress(token, address, uuid, verify_connection),
                           "the upload progress", {"complete": bool})
        if progress["complete"]:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"upload of dataset {uuid} incomplete after {timeout} s")
        time.sleep(poll_interval)


def _answer(text: str, what: str, fields: Dict[str, type]) -> Dict[str, Any]:
    """The JSON object of a successful answer, with ``fields`` of their types; a
    :class:`HanamiException` for anything else (a proxy's page, a server at the address
    that is no Hanami server), instead of a decoding error or an endless wait."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(parsed.get(name), kind)
                                               for name, kind in fields.items()):
        shown = text if len(text) <= 200 else text[:199] + "…"
        raise HanamiException(f"unexpected answer to {what}, not a Hanami server's: {shown!r} "
                              f"(is the address that of a Hanami server?)")
    return parsed


class _SessionRefused(Exception):
    def __init__(self, reply: dict) -> None:
        super().__init__(reply)
        self.reply = reply


async def _send_chunks(token: str, address: str, file_uuid: str, chunks: Iterable[bytes],
                       verify_connection: Verify,
                       sent: Optional[Callable[[int], None]] = None,
                       keep_alive: Optional[Callable[[], object]] = None) -> None:
    """Uploads chunks into one temporary file over one websocket session.

    Each chunk is a ``FileUpload_Message`` at its running byte offset; the server answers
    every chunk, and a refused chunk raises ``BadRequestException`` with its message.
    ``keep_alive`` is called after every chunk (to renew the token of a long upload: the
    session itself outlives its token).

    The asyncio client, not the threaded one: that one reads the socket in a background
    thread while the caller writes it, which a TLS socket does not allow; about one ``wss``
    upload in a hundred then sent its opening request into nowhere and hung.
    """
    try:
        async with await _websocket.opened(address, verify_connection) as ws:
            await ws.send(_websocket.init_message(token, _websocket.TARGET_FILE_UPLOAD,
                                                  file_uuid))
            reply = _websocket.parse_init_reply(await ws.recv())
            if reply.get("success") is not True:
                raise _SessionRefused(reply)
            position = 0
            for chunk in chunks:
                if not chunk:
                    continue
                await ws.send(FileUploadMessage(position=position, data=chunk).encode())
                answer = await ws.recv()
                if isinstance(answer, str):
                    raise HanamiException(f"unexpected text answer to an upload chunk: "
                                          f"{answer!r}")
                response = FileUploadResponseMessage.decode(answer)
                if not response.success:
                    message = response.error_message
                    if message == _websocket.UPLOAD_GONE:
                        raise NotFoundException(message)
                    if message == _websocket.UPLOAD_FINALISING:
                        raise ConflictException(message)
                    if message == _websocket.SHUTTING_DOWN:
                        raise _websocket.shutting_down()
                    # As direct IO and the REST calls report it.
                    if message.startswith("access withdrawn: "):
                        raise UnauthorizedException(message)
                    raise BadRequestException(message or "upload chunk refused")
                position += len(chunk)
                if sent is not None:
                    sent(len(chunk))
                if keep_alive is not None:
                    keep_alive()
    except websockets.ConnectionClosed as e:
        if e.rcvd is not None and e.rcvd.reason == _websocket.SHUTTING_DOWN:
            raise _websocket.shutting_down() from e
        raise HanamiException(f"upload websocket closed unexpectedly: {e}") from e


#: Seconds between two looks at whether the calling task is being cancelled.
_CANCEL_POLL = 0.1


def _caller_cancelled() -> bool:
    """Whether the task that called into this synchronous code is being cancelled: under
    ``asyncio.run`` (Python 3.11 and later), Ctrl-C cancels the main task instead of
    raising ``KeyboardInterrupt`` in it."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return bool(cancelling is not None and cancelling())


def _run(coroutine: Coroutine[Any, Any, None], stop: Optional[threading.Event] = None) -> None:
    """Runs ``coroutine`` to its end from synchronous code: on a new event loop, or on a
    worker thread's when this thread already runs one (a notebook, an async application).
    If this thread is interrupted while it waits for the worker (Ctrl-C), or its task is
    cancelled, ``stop`` is set so that the coroutine can end early; the exception
    (``asyncio.CancelledError`` for a cancelled task) goes on once the worker is done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        future = worker.submit(asyncio.run, coroutine)
        try:
            while True:
                try:
                    future.result(timeout=_CANCEL_POLL)
                    return
                except concurrent.futures.TimeoutError:
                    if _caller_cancelled():
                        break
            if stop is not None:
                stop.set()
            concurrent.futures.wait([future])
            raise asyncio.CancelledError()
        except BaseException:
            if stop is not None:
                stop.set()
            raise


class _Stopped(Exception):
    """The caller was interrupted; the upload ends before its next chunk."""


def _until(stop: threading.Event, chunks: Iterable[bytes]) -> Iterable[bytes]:
    for chunk in chunks:
        if stop.is_set():
            raise _Stopped()
        yield chunk


def _file_chunks(path: FilePath, size: int) -> Iterable[bytes]:
    """The file's ``size`` bytes (as declared to the server) in chunks; ``OSError`` when the
    file turns out shorter or longer (it changed after its size was taken), instead of an
    upload that the server would wait for until its ``upload_timeout``."""
    with open(path, "rb") as f:
        left = size
        while left > 0:
            chunk = f.read(min(CHUNK_SIZE, left))
            if not chunk:
                raise OSError(f"{path}: the file changed while it was sent: {size} bytes "
                              f"were announced, it ended after {size - left}")
            left -= len(chunk)
            yield chunk
        if f.read(1):
            raise OSError(f"{path}: the file changed while it was sent: it grew beyond the "
                          f"{size} bytes announced")


def _upload_file(tokens: TokenKeeper, address: str, file_uuid: str, path: FilePath, size: int,
                 verify_connection: Verify, sent: Optional[Callable[[int], None]]) -> None:
    stop = threading.Event()
    # Closed whatever ends the upload (a failing progress callback included), so that the
    # file is not left open until the garbage collector finds it.
    chunks = _file_chunks(path, size)
    try:
        _run(_send_chunks(tokens.current(), address, file_uuid, _until(stop, chunks),
                          verify_connection, sent, tokens.current), stop)
    except _SessionRefused as refused:
        raise _websocket.session_error(refused.reply) from None
    finally:
        try:
            chunks.close()
        except ValueError:
            pass  # a second Ctrl-C left the worker reading it; the file closes with it


async def send_data(token: str, address: str, dataset_uuid: str, file_uuid: str,
                    data: bytes, verify_connection: Verify = True) -> bool:
    """Uploads ``data`` into the temporary file ``file_uuid`` of an unfinished upload.

    Sends 128 KiB chunks over one websocket session and waits for the answer to each.
    Returns ``True``, or ``False`` if the server refused the session (unknown file uuid,
    invalid token). ``dataset_uuid`` is not needed and kept for the original signature.
    """
    del dataset_uuid
    try:
        # Anything that holds bytes (bytes, bytearray, memoryview, mmap, array, ...).
        view = memoryview(data).cast("B")
    except TypeError:
        raise TypeError(f"data must be the file's bytes (bytes, bytearray, memoryview, mmap or "
                        f"another object that holds bytes), got {type(data).__name__}") from None
    chunks = (bytes(view[i:i + CHUNK_SIZE]) for i in range(0, len(view), CHUNK_SIZE))
    try:
        await _send_chunks(token, address, file_uuid, chunks, verify_connection)
    except _SessionRefused:
        return False
    return True


#: Seconds the deletion of a failed or interrupted upload may take.
_DISCARD_TIMEOUT = 5.0


@contextlib.contextmanager
def _discarded_on_failure(tokens: TokenKeeper, address: str, dataset_uuid: str,
                          verify_connection: Verify) -> Iterator[None]:
    """Asks the server to discard a registered upload when the steps inside (sending the
    files, waiting until every byte has arrived) fail or are interrupted (``KeyboardInterrupt``
    included), so that it neither waits for the server's ``upload_timeout`` nor counts
    against the user's unfinished uploads. Best effort: the original exception goes on
    either way. The finalisation stays outside: once requested, the server makes the
    dataset whatever the client does, so it is never deleted here."""
    try:
        yield
    except BaseException as stopped:
        withdrawn, outcome = _withdrawn(tokens, address, dataset_uuid, verify_connection)
        # An interruption says what became of the upload, under its traceback (Python 3.11
        # and later); other errors say that themselves, but for an upload left on the
        # server (its token refused, say), which the error names so that it can be deleted.
        if isinstance(stopped, (KeyboardInterrupt, asyncio.CancelledError)):
            if hasattr(stopped, "add_note"):
                stopped.add_note(f"upload of dataset '{dataset_uuid}' stopped: {outcome}")
        elif not withdrawn and isinstance(stopped, HanamiException):
            stopped.message = (f"{stopped.message} (upload of dataset '{dataset_uuid}' "
                               f"stopped: {outcome})")
            stopped.args = (stopped.message,)
        raise


def _withdrawn(tokens: TokenKeeper, address: str, dataset_uuid: str,
               verify_connection: Verify) -> Tuple[bool, str]:
    """Asks the server to discard an unfinished upload (best effort); whether nothing of it
    is left there, and what became of it, in words for a note."""
    try:
        hanami_request.send_request("DELETE", tokens.last(), address, _PATH,
                                    values={"uuid": dataset_uuid},
                                    verify=verify_connection, timeout=_DISCARD_TIMEOUT)
        return True, "the server discarded what had arrived"
    except NotFoundException:
        return True, "nothing of it was left on the server"
    except Exception:  # pylint: disable=broad-except
        return False, ("the server could not be asked to discard what had arrived (it does "
                       "so itself after its upload_timeout, and when it stops or starts); "
                       "dataset.delete_dataset with a valid token cancels it sooner, where "
                       "a NotFoundException means that it is gone already")


def _progress_counter(total: int,
                      progress: Optional[ProgressCallback]) -> Optional[Callable[[int], None]]:
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError(f"progress must be a function of (sent, total), got "
                        f"{type(progress).__name__}")
    done = [0]

    def sent(count: int) -> None:
        done[0] += count
        progress(done[0], total)

    return sent


def _file_size(path: FilePath) -> int:
    """The size of a file to upload; an empty one is refused before the server is asked
    (it would answer with the name of a request field instead of the file's)."""
    if not isinstance(path, (str, bytes, os.PathLike)):  # an int names an open descriptor
        raise TypeError(f"a file to upload is named by a str or a path object such as "
                        f"pathlib.Path, got {type(path).__name__}")
    size = os.path.getsize(path)
    # Local problems are the OSErrors that open() would raise, as for a missing file.
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to upload",
                                os.fsdecode(path))
    if not os.path.isfile(path):
        raise OSError(f"{os.fsdecode(path)}: not a regular file (uploads announce their size "
                      f"first, so pipes and devices cannot be uploaded; save the data to a "
                      f"file)")
    if size == 0:
        raise BadRequestException(f"{path}: the file is empty")
    # Opened once here, so that a file that cannot be read raises its PermissionError before
    # an upload is started for it.
    with open(path, "rb"):
        pass
    return size


def upload_mnist_files(token: str, address: str, name: str, input_file_path: FilePath,
                       label_file_path: FilePath, verify_connection: Verify = True, *,
                       progress: Optional[ProgressCallback] = None) -> str:
    """Uploads an MNIST image file and label file (IDX format) as one dataset.

    Returns the new dataset's uuid (a string). The dataset has the column groups
    ``picture`` (the pixels) and ``label`` (10 one-hot columns). ``progress(sent, total)``
    is called after every chunk if given. Works with and without a running event loop.

    Raises ``BadRequestException`` for files the server rejects (wrong magic numbers,
    counts, labels) and for an empty local file; before anything is sent,
    ``FileNotFoundError`` for a missing local file, ``IsADirectoryError`` for a folder and
    ``OSError`` for a pipe or device (uploads announce their size first) and
    ``PermissionError`` for a file that cannot be read; ``NotFoundException`` if
    the upload is cancelled while it runs (its dataset deleted, from anywhere). An upload that takes longer than the token has left renews it for
    itself (the caller's token is not changed).
    """
    return _upload(token, address, "mnist", name, [input_file_path, label_file_path],
                   verify_connection, progress)


def upload_csv_files(token: str, address: str, name: str, input_file_path: FilePath,
                     verify_connection: Verify = True, *,
                     progress: Optional[ProgressCallback] = None) -> str:
    """Uploads a CSV file as a dataset; returns the new dataset's uuid (a string).

    The first line names the columns; every column becomes a one-column group of that name
    (usable as input or output name in tasks). Every cell must be a number; a cell in double
    quotes counts without them. ``BadRequestException`` for files the server rejects; local
    files and ``NotFoundException`` as for ``upload_mnist_files``. A long upload renews its token as
    ``upload_mnist_files`` does.
    """
    return _upload(token, address, "csv", name, [input_file_path], verify_connection,
                   progress)


#: The files of each kind of upload, in the server's order: the start request's field for
#: the file's size, and the field of the file's uuid in its answer and in the finalisation.
_UPLOAD_FIELDS = {
    "mnist": [("input_data_size", "uuid_input_file"), ("label_data_size", "uuid_label_file")],
    "csv": [("input_data_size", "uuid_input_file")],
}


def _upload(token: str, address: str, kind: str, name: str, paths: List[FilePath],
            verify_connection: Verify, progress: Optional[ProgressCallback]) -> str:
    """Uploads the files of a ``kind`` upload (one per entry of ``_UPLOAD_FIELDS[kind]``):
    start, send every file, wait until the server has every byte, finalise. Returns the
    dataset's uuid; an upload that fails before its finalisation is discarded."""
    fields = _UPLOAD_FIELDS[kind]
    sizes = [_file_size(path) for path in paths]
    sent = _progress_counter(sum(sizes), progress)
    body: Dict[str, Any] = {"name": name}
    body.update((size_field, size) for (size_field, _), size in zip(fields, sizes))
    tokens = TokenKeeper(token, address, verify_connection)
    init = _answer(_registration(tokens, address, f"{_PATH}/upload/{kind}", body,
                                 verify_connection),
                   "the upload's start", {field: str for field in ["uuid", *(f for _, f in fields)]})
    with _discarded_on_failure(tokens, address, init["uuid"], verify_connection):
        for (_, uuid_field), path, size in zip(fields, paths, sizes):
            _upload_file(tokens, address, init[uuid_field], path, size, verify_connection,
                         sent)
        wait_until_upload_complete(tokens.current(), address, init["uuid"],
                                   verify_connection, poll_interval=0.1)
    finish = {"uuid": init["uuid"]}
    finish.update((uuid_field, init[uuid_field]) for _, uuid_field in fields)
    _finalize(tokens, address, f"/upload/{kind}", finish, verify_connection)
    return init["uuid"]


def _registration(tokens: TokenKeeper, address: str, path: str, body: Dict[str, Any],
                  verify_connection: Verify) -> str:
    """The answer to the request that registers an upload (at ``path``). The request runs in
    a thread of its own, so that an interruption while it waits for the answer (Ctrl-C)
    still withdraws the upload that the answer names: the caller then waits for the answer
    and the deletion (a second Ctrl-C ends that wait) before the interruption goes on."""
    answer: "concurrent.futures.Future[str]" = concurrent.futures.Future()

    def register() -> None:
        try:
            answer.set_result(hanami_request.send_post_request(
                tokens.current(), address, path, body, verify_connection))
        except BaseException as e:  # pylint: disable=broad-except
            answer.set_exception(e)

    threading.Thread(target=register, name="hanami-upload-start", daemon=True).start()
    try:
        return answer.result()
    except BaseException as stopped:
        if answer.done() and answer.exception() is stopped:
            raise  # the request's own failure: nothing was registered
        try:
            uuid = json.loads(answer.result())["uuid"]
        except Exception:  # pylint: disable=broad-except
            note = "upload stopped while it was being registered: the server registered none"
        else:
            _, outcome = _withdrawn(tokens, address, uuid, verify_connection)
            note = f"upload of dataset '{uuid}' stopped while it was being registered: {outcome}"
        if hasattr(stopped, "add_note"):
            stopped.add_note(note)
        raise


def _finalize(tokens: TokenKeeper, address: str, path: str, finish: dict,
              verify_connection: Verify) -> None:
    """Asks the server to turn a complete upload into the dataset ``finish["uuid"]``.

    When the request went out but no answer came (the connection broke, the server
    stopped), the server may still register the dataset (a stopping server finishes the
    conversions it began): the error, of the same ``requests`` type, then says so and names
    the dataset, so that the caller looks for it before uploading again."""
    try:
        hanami_request.send_put_request(tokens.current(), address, _PATH + path, finish,
                                        verify_connection)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        if _never_sent(e):
            raise
        raise type(e)(f"{e} (the server had every byte of the upload but did not answer its "
                      f"finalisation; it may still register the dataset as "
                      f"'{finish['uuid']}': look for it with get_dataset before uploading "
                      f"again)", request=e.request, response=e.response) from e


def _never_sent(error: Exception) -> bool:
    """Whether a ``requests`` error means that no connection was made (so the server never
    got the request)."""
    # A failed TLS handshake or proxy connection sends nothing either.
    if isinstance(error, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError,
                          requests.exceptions.ProxyError)):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                               urllib3.exceptions.ConnectTimeoutError))
