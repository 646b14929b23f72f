"""Test certificates for the HTTPS tests, made with the ``openssl`` command line.

``make_certificates(folder)`` writes a root CA, an intermediate CA and, signed by the
intermediate, an RSA server certificate (``rsa.pem``: leaf then intermediate, so a client
that trusts only the root must be sent the chain) with its key in PKCS#8 (``rsa.key``) and
PKCS#1 (``rsa-pkcs1.key``), and an ECDSA P-256 server certificate (``ec.pem``) with its key
in SEC1 (``ec-sec1.key``) and PKCS#8 (``ec.key``). Every server certificate names
``localhost``, ``game.test``, ``127.0.0.1`` and ``::1``.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = "DNS:localhost,DNS:game.test,IP:127.0.0.1,IP:::1"


@dataclass(frozen=True)
class Certificates:
    folder: Path
    root: Path
    rsa_chain: Path
    rsa_key: Path
    rsa_pkcs1_key: Path
    ec_chain: Path
    ec_key: Path
    ec_sec1_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test root and checks the host name."""
        context = ssl.create_default_context(cafile=str(self.root))
        return context


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _sign(folder: Path, csr: str, out: str, ca: str, ca_key: str, extensions: str) -> None:
    ext = folder / f"{out}.ext"
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", out, "-days", "30", "-sha256", "-extfile", ext.name, cwd=folder,
    )  # fmt: skip


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    server_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={SERVER_NAMES}\n"
    )
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "root.key", "-out", "root.pem", "-days", "30", "-subj", "/CN=godottpd test root",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=godottpd test intermediate",
        cwd=folder,
    )  # fmt: skip
    _sign(folder, "inter.csr", "inter.pem", "root.pem", "root.key", ca_ext)
    # RSA server certificate, PKCS#8 key (openssl's default) and the same key in PKCS#1.
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "rsa.key", "-out", "rsa.csr",
        "-subj", "/CN=localhost", cwd=folder,
    )  # fmt: skip
    _sign(folder, "rsa.csr", "rsa-leaf.pem", "inter.pem", "inter.key", server_ext)
    _openssl("rsa", "-in", "rsa.key", "-traditional", "-out", "rsa-pkcs1.key", cwd=folder)
    # ECDSA server certificate, SEC1 key and the same key in PKCS#8.
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec-sec1.key", cwd=folder
    )
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "ec-sec1.key", "-out", "ec.key", cwd=folder)
    _openssl(
        "req", "-new", "-key", "ec-sec1.key", "-out", "ec.csr", "-subj", "/CN=localhost",
        cwd=folder,
    )  # fmt: skip
    _sign(folder, "ec.csr", "ec-leaf.pem", "inter.pem", "inter.key", server_ext)
    inter = (folder / "inter.pem").read_text()
    (folder / "rsa.pem").write_text((folder / "rsa-leaf.pem").read_text() + inter)
    (folder / "ec.pem").write_text((folder / "ec-leaf.pem").read_text() + inter)
    return Certificates(
        folder=folder,
        root=folder / "root.pem",
        rsa_chain=folder / "rsa.pem",
        rsa_key=folder / "rsa.key",
        rsa_pkcs1_key=folder / "rsa-pkcs1.key",
        ec_chain=folder / "ec.pem",
        ec_key=folder / "ec.key",
        ec_sec1_key=folder / "ec-sec1.key",
    )


def first_der(cert_path: Path) -> bytes:
    pem = cert_path.read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(pem[: pem.index(end) + len(end)] + "\n")


def spki_sha256_base64(cert_path: Path) -> str:
    """What Chromium's ``--ignore-certificate-errors-spki-list`` takes: the base64 SHA-256
    of the certificate's SubjectPublicKeyInfo."""
    public = subprocess.run(
        ["openssl", "x509", "-in", str(cert_path), "-noout", "-pubkey"],
        check=True,
        capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=public,
        check=True,
        capture_output=True,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()
