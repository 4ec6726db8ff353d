"""Signing credentials for Content Credentials (C2PA): a local CA and an ES256 signer.

C2PA signing needs a certificate chain, not a bare self-signed leaf (DESIGN.md §6):
a CA plus a signer certificate with KeyUsage digitalSignature, an
ExtendedKeyUsage (emailProtection), and Subject/Authority key identifiers.
``make_credentials`` makes such a pair with ``cryptography``: for tests and for
a user who has no certificate of their own. A real deployment gives its own
certificate chain and key (params.yaml ``watermark.c2pa_cert`` / ``c2pa_key``)
and verifiers add its CA to their trust list. Private keys made here are
written 0600 and belong outside version control.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stages.composite.watermark import WatermarkParams
from talkedit.atomic import atomic_path
from talkedit.errors import TalkeditError

CA_FILE = "ca.pem"
CHAIN_FILE = "signer-chain.pem"  # signer certificate, then the CA
KEY_FILE = "signer-key.pem"


@dataclass(frozen=True)
class Credentials:
    """PEM files: the signer's chain (leaf first), its private key, and the CA that anchors it."""

    chain: Path
    key: Path
    trust_anchor: Path | None = None

    def read(self) -> tuple[bytes, bytes]:
        """(chain PEM, key PEM); TalkeditError when a file is missing."""
        for path in (self.chain, self.key):
            if not path.is_file():
                raise TalkeditError(path, "signing credential not found",
                                    "give a PEM certificate chain and key, or make test ones "
                                    "with make_credentials()")
        return self.chain.read_bytes(), self.key.read_bytes()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talkedit (local)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, private: bool = False) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        if private:
            os.chmod(tmp, 0o600)
    if private:
        os.chmod(path, 0o600)


def make_credentials(folder: str | Path, common_name: str = "talkedit signer",
                     days: int = 825) -> Credentials:
    """Make a P-256 CA and a signer certificate it issues, as PEM files in ``folder``."""
    folder = Path(folder)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{common_name} CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    creds = Credentials(folder / CHAIN_FILE, folder / KEY_FILE, folder / CA_FILE)
    _write(creds.trust_anchor, ca.public_bytes(pem))  # type: ignore[arg-type]
    _write(creds.chain, leaf.public_bytes(pem) + ca.public_bytes(pem))
    _write(creds.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), private=True)
    return creds


def local_credentials(folder: str | Path) -> Credentials:
    """The credentials in ``folder``, made there on first use (a local, untrusted-by-others CA)."""
    folder = Path(folder)
    creds = Credentials(folder / CHAIN_FILE, folder / KEY_FILE, folder / CA_FILE)
    if creds.chain.is_file() and creds.key.is_file():
        return creds
    return make_credentials(folder)


LOCAL_FOLDER = ".talkedit/c2pa"  # under the project root; git-ignored


@dataclass(frozen=True)
class SigningSettings:
    """Where the Content Credentials signer and the trusted CAs are, from params.yaml
    ``watermark`` (``c2pa_cert``, ``c2pa_key``, ``c2pa_trust``; paths relative to the
    project root).

    No ``c2pa_cert``/``c2pa_key``: a local CA and signer made on first use under
    ``<project>/.talkedit/c2pa``. The local CA is always trusted by verify when it exists.
    """

    cert: Path | None = None
    key: Path | None = None
    trust: tuple[Path, ...] = ()
    local_folder: Path | None = None

    @classmethod
    def of(cls, params: WatermarkParams, root: Path) -> SigningSettings:
        def path(value: str | None) -> Path | None:
            return None if value is None else root / value  # an absolute value stays absolute

        return cls(path(params.c2pa_cert), path(params.c2pa_key),
                   tuple(root / t for t in params.c2pa_trust), root / LOCAL_FOLDER)

    def credentials(self) -> Credentials:
        if self.cert is not None and self.key is not None:
            return Credentials(self.cert, self.key)
        if self.local_folder is None:
            raise TalkeditError("watermark", "no signing certificate configured",
                                "set watermark.c2pa_cert and c2pa_key in params.yaml")
        return local_credentials(self.local_folder)

    def trust_anchors(self) -> list[Path]:
        anchors = list(self.trust)
        if self.local_folder is not None and (self.local_folder / CA_FILE).is_file():
            anchors.append(self.local_folder / CA_FILE)
        return anchors
