"""HTTPS setup: the certificate and key files are checked when the server is made, and
``self_signed_certificate()`` makes (and keeps) a certificate for local use."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from godottpd import HttpServer, self_signed_certificate


def make(cert: Any, key: Any) -> HttpServer:
    return HttpServer(port=0, bind_address="127.0.0.1", tls_cert=cert, tls_key=key)


@pytest.mark.parametrize(
    ("chain", "key"),
    [
        ("rsa_chain", "rsa_key"),
        ("rsa_chain", "rsa_pkcs1_key"),
        ("ec_chain", "ec_key"),
        ("ec_chain", "ec_sec1_key"),
    ],
)
def test_every_key_format_is_accepted(tls_certs: Any, chain: str, key: str) -> None:
    server = make(getattr(tls_certs, chain), getattr(tls_certs, key))
    assert server.scheme == "https"


def test_paths_may_be_str_or_pathlike(tls_certs: Any) -> None:
    assert make(str(tls_certs.ec_chain), tls_certs.ec_key).scheme == "https"


def test_without_files_the_server_speaks_http() -> None:
    assert HttpServer(port=0).scheme == "http"


def test_missing_certificate_names_the_file(tls_certs: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=r"certificate file .*nope\.pem does not exist"):
        make(missing, tls_certs.ec_key)


def test_missing_key_names_the_file(tls_certs: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ValueError, match=r"key file .*nope\.key does not exist"):
        make(tls_certs.ec_chain, missing)


def test_unreadable_file_names_the_file(tls_certs: Any, tmp_path: Path) -> None:
    # A folder cannot be read as a file (and, unlike chmod 000, this holds for root too).
    folder = tmp_path / "cert-folder.pem"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"cert-folder\.pem cannot be read"):
        make(folder, tls_certs.ec_key)


def test_unreadable_by_permissions_names_the_file(tls_certs: Any, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    key = tmp_path / "locked.key"
    shutil.copy(tls_certs.ec_key, key)
    key.chmod(0)
    with pytest.raises(ValueError, match=r"locked\.key cannot be read"):
        make(tls_certs.ec_chain, key)


@pytest.mark.parametrize("content", [b"", b"hello, not a certificate\n", bytes(range(256))])
def test_certificate_not_pem_names_the_file(tls_certs: Any, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.pem is not PEM"):
        make(bad, tls_certs.ec_key)


def test_key_not_pem_names_the_file(tls_certs: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("garbage\n")
    with pytest.raises(ValueError, match=r"key file .*bad\.key is not PEM"):
        make(tls_certs.ec_chain, bad)


def test_key_file_holding_a_certificate_says_so(tls_certs: Any) -> None:
    with pytest.raises(ValueError, match=r"key file .*ec\.pem holds no PEM private key"):
        make(tls_certs.ec_chain, tls_certs.ec_chain)


def test_certificate_file_holding_a_key_says_so(tls_certs: Any) -> None:
    with pytest.raises(ValueError, match=r"ec\.key holds no PEM CERTIFICATE"):
        make(tls_certs.ec_key, tls_certs.ec_key)


def test_truncated_pem_is_not_pem(tls_certs: Any, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pem"
    cut.write_text(tls_certs.ec_chain.read_text()[:200])
    with pytest.raises(ValueError, match=r"cut\.pem is not PEM"):
        make(cut, tls_certs.ec_key)


@pytest.mark.parametrize(
    ("chain", "key"), [("rsa_chain", "ec_key"), ("ec_chain", "rsa_key"), ("ec_chain", "root_key")]
)
def test_key_that_does_not_match_names_both_files(tls_certs: Any, chain: str, key: str) -> None:
    key_path = tls_certs.folder / "root.key" if key == "root_key" else getattr(tls_certs, key)
    with pytest.raises(ValueError, match=r"key file .* does not match the certificate in"):
        make(getattr(tls_certs, chain), key_path)


def test_cert_without_key_and_key_without_cert_are_errors(tls_certs: Any) -> None:
    with pytest.raises(ValueError, match="tls_cert needs tls_key"):
        HttpServer(port=0, tls_cert=tls_certs.ec_chain)
    with pytest.raises(ValueError, match="tls_key needs tls_cert"):
        HttpServer(port=0, tls_key=tls_certs.ec_key)


def test_reload_tls_needs_tls() -> None:
    with pytest.raises(RuntimeError, match="tls_cert"):
        HttpServer(port=0).reload_tls()


def test_reload_tls_reports_a_broken_file_and_keeps_going(tls_certs: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    shutil.copy(tls_certs.ec_chain, cert)
    shutil.copy(tls_certs.ec_key, key)
    server = make(cert, key)
    server.reload_tls()
    shutil.copy(tls_certs.rsa_key, key)
    with pytest.raises(ValueError, match=r"k\.pem does not match"):
        server.reload_tls()
    key.unlink()
    with pytest.raises(ValueError, match=r"k\.pem does not exist"):
        server.reload_tls()


# --------------------------------------------------------------------------- #
# self_signed_certificate()
# --------------------------------------------------------------------------- #


def names_of(cert_path: str) -> set[str]:
    decoded = ssl._ssl._test_decode_cert(cert_path)  # type: ignore[attr-defined]
    return {value for _, value in decoded["subjectAltName"]}


def test_self_signed_covers_local_names_and_is_reused(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(folder=tmp_path / "cache")
    names = names_of(cert)
    assert {"localhost", "127.0.0.1"} <= names
    assert any(name in names for name in ("::1", "0:0:0:0:0:0:0:1"))
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert make(cert, key).scheme == "https"
    first = Path(cert).read_bytes()
    assert self_signed_certificate(folder=tmp_path / "cache") == (cert, key)
    assert Path(cert).read_bytes() == first, "a valid certificate is reused"


def test_self_signed_names_the_host_and_given_names(tmp_path: Path) -> None:
    import socket

    cert, _ = self_signed_certificate(["game.test", "10.1.2.3"], folder=tmp_path)
    names = names_of(cert)
    assert {"game.test", "10.1.2.3", socket.gethostname().lower()} <= names


def test_self_signed_is_replaced_when_a_name_is_missing(tmp_path: Path) -> None:
    cert, _ = self_signed_certificate(["one.test"], folder=tmp_path)
    first = Path(cert).read_bytes()
    cert, _ = self_signed_certificate(["two.test"], folder=tmp_path)
    assert Path(cert).read_bytes() != first
    assert {"one.test", "two.test"} <= names_of(cert)
    # Both names now covered: reused.
    again, _ = self_signed_certificate(["one.test"], folder=tmp_path)
    assert Path(again).read_bytes() == Path(cert).read_bytes()


def test_self_signed_is_replaced_when_the_key_was_lost(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(folder=tmp_path)
    first = Path(cert).read_bytes()
    Path(key).unlink()
    cert, key = self_signed_certificate(folder=tmp_path)
    assert Path(cert).read_bytes() != first
    assert make(cert, key).scheme == "https"


def test_self_signed_default_folder_is_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cert, key = self_signed_certificate()
    assert Path(cert).parent == tmp_path / "xdg" / "godottpd"
    assert Path(key).parent == tmp_path / "xdg" / "godottpd"
    assert stat.S_IMODE(os.stat(tmp_path / "xdg" / "godottpd").st_mode) == 0o700


def test_self_signed_rejects_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a DNS name nor an IP address"):
        self_signed_certificate(["not a name"], folder=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an_ed25519_key_is_accepted(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "ed.key",
         "-out", "ed.pem", "-days", "2", "-subj", "/CN=localhost"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    assert make(tmp_path / "ed.pem", tmp_path / "ed.key").scheme == "https"
