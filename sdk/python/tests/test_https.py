"""HTTPS and WSS with a self-signed certificate: every call with verify_connection=False."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from hanami_sdk import (cluster, dataset, direct_io, hanami_exceptions, hanami_request,
                        hanami_token, hosts, task)

from conftest import Server, start_server
from helpers import ADMIN, ADMIN_PW, SEED_TEMPLATE, pattern_mnist, unique, wait_for_task


def self_signed_certificate(directory: Path, expired: bool = False,
                            client_only: bool = False) -> tuple:
    """Writes a self-signed certificate for 127.0.0.1 and its key (PEM); ``expired``: one
    whose time ended yesterday; ``client_only``: one whose extended key usage leaves out
    servers."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hanami test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2 if expired else 0, minutes=5))
        .not_valid_after(now + datetime.timedelta(days=-1 if expired else 1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    )
    if client_only:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``cert.pem`` and ``key.pem`` of a self-signed certificate."""
    directory = tmp_path_factory.mktemp("tls")
    self_signed_certificate(directory)
    return directory


@pytest.fixture(scope="module")
def tls_server(tls_directory: Path) -> Iterator[Server]:
    cert, key = str(tls_directory / "cert.pem"), str(tls_directory / "key.pem")
    server = start_server(tls_directory / "data", ["--tls-cert", cert, "--tls-key", key])
    assert server.url.startswith("https://")
    yield server
    server.stop()


def test_certificate_is_checked_by_default(tls_server: Server, tmp_path: Path) -> None:
    """A refused certificate says how to trust it, or that the file given did not sign it."""
    with pytest.raises(requests.exceptions.SSLError) as info:
        hanami_token.request_token(tls_server.url, ADMIN, ADMIN_PW)
    assert "pass the path of that certificate (or of its CA's) as verify_connection" in \
        str(info.value)
    other, _ = self_signed_certificate(tmp_path)
    with pytest.raises(requests.exceptions.SSLError) as info:
        hanami_token.request_token(tls_server.url, ADMIN, ADMIN_PW, other)
    assert "the certificate file given as verify_connection did not sign" in str(info.value)


def test_an_expired_certificate_is_named(tmp_path: Path) -> None:
    """A certificate refused for itself (expired) says so where the client was given it to
    trust (it said the file did not sign the server's certificate)."""
    cert, key = self_signed_certificate(tmp_path, expired=True)
    server = start_server(tmp_path / "data", ["--tls-cert", cert, "--tls-key", key])
    try:
        with pytest.raises(requests.exceptions.SSLError) as info:
            hanami_token.request_token(server.url, ADMIN, ADMIN_PW, cert)
        assert "a certificate of the server's chain (or the file given as " \
            "verify_connection) has expired: the server needs a new one" in \
            str(info.value), info.value
    finally:
        server.stop()


def test_a_certificate_of_the_wrong_kind_is_named(tls_server: Server, tls_directory: Path,
                                                  tmp_path: Path) -> None:
    """A DER file given to trust, and a server certificate made for clients only, are named
    as such (the first got no hint, the second was said not to have signed the server's
    certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    pem = (tls_directory / "cert.pem").read_bytes()
    der = tmp_path / "cert.der"
    der.write_bytes(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
    with pytest.raises(requests.exceptions.SSLError) as info:
        hanami_token.request_token(tls_server.url, ADMIN, ADMIN_PW, str(der))
    assert "the file given as verify_connection holds no PEM certificate" in str(info.value)
    cert, key = self_signed_certificate(tmp_path, client_only=True)
    server = start_server(tmp_path / "data", ["--tls-cert", cert, "--tls-key", key])
    try:
        with pytest.raises(requests.exceptions.SSLError) as info:
            hanami_token.request_token(server.url, ADMIN, ADMIN_PW, cert)
        assert "a certificate of the server's chain is not for servers" in str(info.value)
    finally:
        server.stop()


def test_a_silent_server_fails_after_the_connect_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts and then says nothing (no TLS handshake) fails after
    CONNECT_TIMEOUT, not after REQUEST_TIMEOUT (300 s)."""
    monkeypatch.setattr(hanami_request, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        address = f"https://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(requests.exceptions.ConnectTimeout) as info:
            hanami_token.request_token(address, ADMIN, ADMIN_PW, False)
        assert time.monotonic() - started < 5
        # Named as the handshake it is, with the scheme hint (requests said "Read timed
        # out", as if an answer had been late).
        assert str(info.value) == (
            f"cannot reach {address}: no connection within 0.5 s: the TLS handshake did not "
            f"complete (is this the server's address, with the right http:// or https:// "
            f"scheme?)")
        assert isinstance(info.value, requests.exceptions.Timeout)


def test_a_late_answer_stays_a_read_timeout() -> None:
    """A server that takes the request and does not answer in time is a read timeout, not
    a handshake that did not complete."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(requests.exceptions.ReadTimeout) as info:
            hanami_request.send_request("GET", None,
                                        f"http://127.0.0.1:{silent.getsockname()[1]}",
                                        "/v1.0alpha/auth", timeout=0.3)
        assert not isinstance(info.value, requests.exceptions.ConnectTimeout)
        assert "handshake" not in str(info.value)


def test_a_wrong_scheme_is_named(tls_server: Server, address: str) -> None:
    """http:// to the HTTPS server and https:// to a plain one fail with a hint (the
    server answers plain HTTP on its HTTPS port with a 400 that says so)."""
    plain_to_tls = tls_server.url.replace("https://", "http://")
    with pytest.raises(hanami_exceptions.BadRequestException) as info:
        hanami_token.request_token(plain_to_tls, ADMIN, ADMIN_PW)
    assert "use an https:// address" in info.value.message
    tls_to_plain = address.replace("http://", "https://")
    with pytest.raises(requests.exceptions.SSLError) as info:
        hanami_token.request_token(tls_to_plain, ADMIN, ADMIN_PW, False)
    assert "use an http:// address" in str(info.value)


def test_everything_over_https_without_verification(tls_server: Server, files: Path,
                                                    recwarn: pytest.WarningsRecorder) -> None:
    address = tls_server.url
    token = hanami_token.request_token(address, ADMIN, ADMIN_PW, False)
    assert json.loads(hosts.list_hosts(token, address, False))["body"]

    # uploads go over wss://
    images, labels = pattern_mnist(files, "tls", 300)
    data = dataset.upload_mnist_files(token, address, unique("tls_set"), images, labels,
                                      False)
    assert json.loads(dataset.get_dataset(token, address, data, False))["number_of_rows"] == 300
    csv = files / "tls.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    csv_uuid = dataset.upload_csv_files(token, address, unique("tls_csv"), str(csv), False)
    assert json.loads(dataset.get_dataset(token, address, csv_uuid,
                                          verify_connection=False))["number_of_rows"] == 2

    cluster_uuid = json.loads(cluster.create_cluster(token, address, unique("tls_cluster"),
                                                     SEED_TEMPLATE, False))["uuid"]
    train = json.loads(task.create_train_task(token, address, "train_task", cluster_uuid,
                                              {"picture": data}, {"label": data}, False))
    wait_for_task(token, address, train["uuid"], cluster_uuid, verify_connection=False)

    async def direct() -> list:
        ws = await cluster.switch_to_direct_mode(token, address, cluster_uuid, False)
        try:
            await direct_io.send_train_input(ws, "picture", [100.0] * 784, True, False, False)
            await direct_io.send_train_input(ws, "label", [1.0] + [0.0] * 9, False, True,
                                             False)
            return await direct_io.send_request_input(ws, "picture", [100.0] * 784, True,
                                                      False)
        finally:
            await ws.close()
            cluster.switch_to_task_mode(token, address, cluster_uuid, False)

    assert len(asyncio.run(direct())) == 10
    # with verification, the self-signed certificate is refused for wss as for https
    with pytest.raises(requests.exceptions.SSLError) as refused:
        asyncio.run(dataset.send_data(token, address, data, cluster_uuid, b"x", True))
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    with pytest.raises(requests.exceptions.SSLError):
        asyncio.run(cluster.switch_to_direct_mode(token, address, cluster_uuid, True))

    cluster.delete_cluster(token, address, cluster_uuid, False)
    dataset.delete_dataset(token, address, data, False)
    dataset.delete_dataset(token, address, csv_uuid, False)
    # verify_connection=False does not flood the caller with urllib3 warnings
    assert not [w for w in recwarn.list if "Unverified HTTPS" in str(w.message)]


def test_a_trusted_certificate_file_covers_rest_and_websockets(
        tls_server: Server, tls_directory: Path, files: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert = str(tls_directory / "cert.pem")
    address = tls_server.url
    token = hanami_token.request_token(address, ADMIN, ADMIN_PW, cert)
    images, labels = pattern_mnist(files, "trusted", 100)
    data = dataset.upload_mnist_files(token, address, unique("trusted"), images, labels, cert)
    assert json.loads(dataset.get_dataset(token, address, data, cert))["number_of_rows"] == 100
    # A pathlib.Path works as with requests, and so does a falsy value (no check).
    path_data = dataset.upload_mnist_files(token, address, unique("trusted"), images, labels,
                                           Path(cert))
    dataset.delete_dataset(token, address, path_data, Path(cert))
    unchecked = dataset.upload_mnist_files(token, address, unique("trusted"), images, labels, 0)
    dataset.delete_dataset(token, address, unchecked, 0)
    # The variable that requests reads is read for websockets too.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    again = dataset.upload_mnist_files(token, address, unique("trusted"), images, labels)
    dataset.delete_dataset(token, address, again)
    dataset.delete_dataset(token, address, data, cert)
