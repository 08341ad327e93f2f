"""``chatgate serve --tls-cert --tls-key`` serves HTTPS (self-signed certificate)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import openai
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import raw, start_gateway


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    gateway = start_gateway(
        tmp_path, args=("--tls-cert", str(cert), "--tls-key", str(key)), ssl_context=context
    )
    try:
        assert gateway.url.startswith("https://")
        assert raw(f"{gateway.url}/health", context=context).status == 200
        client = openai.OpenAI(
            base_url=gateway.base_url,
            api_key="unused",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=context),
        )
        reply = client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert reply.choices[0].message.content is not None
        untrusted = ssl.create_default_context()
        try:
            raw(f"{gateway.url}/health", context=untrusted)
            raise AssertionError("an untrusted certificate was accepted")
        except ssl.SSLError:
            pass
        except OSError as error:  # urllib wraps it
            assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    finally:
        gateway.stop()
