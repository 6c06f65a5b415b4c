"""``childsafe review`` off loopback: refused without TLS, served over TLS
with a certificate and key (made here with openssl), its session cookie then
sent over TLS only."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import skimage.data
from PIL import Image
from support import free_port, run_cli

OPENSSL = shutil.which("openssl")


@pytest.fixture
def case(cli_env: dict[str, str], tmp_path: Path) -> Path:
    evidence, out = tmp_path / "evidence", tmp_path / "case"
    evidence.mkdir()
    Image.fromarray(skimage.data.rocket()).save(evidence / "rocket.jpg", quality=90)
    assert run_cli(["scan", str(evidence), "--case", "OP-TLS-1", "--out", str(out)], cli_env).returncode == 0
    return out


def test_off_loopback_the_app_needs_a_certificate_and_its_key(cli_env: dict[str, str], case: Path) -> None:
    bare = run_cli(["review", str(case), "--host", "0.0.0.0"], cli_env)
    assert (
        bare.returncode == 2 and "--host beyond this machine needs TLS: give a certificate and its key" in bare.stderr
    )
    half = run_cli(["review", str(case), "--host", "0.0.0.0", "--tls-cert", str(case / "report.json")], cli_env)
    assert half.returncode == 2 and "give both --tls-cert and the certificate's key, or neither" in half.stderr
    missing = ["--tls-cert", str(case / "nope.pem"), "--tls-key", str(case / "nope.key")]
    absent = run_cli(["review", str(case), "--host", "0.0.0.0", *missing], cli_env)
    assert absent.returncode == 2 and "is not a readable file" in absent.stderr


@pytest.mark.slow
@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_over_tls_the_login_sets_a_secure_cookie(cli_env: dict[str, str], case: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [str(OPENSSL), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "childsafe", "review", str(case), "--host", "0.0.0.0", "--port", str(port),
         "--tls-cert", str(cert), "--tls-key", str(key)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        link = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "/login?token=" not in link:
            link = process.stdout.readline()
        assert link.strip().startswith(f"https://0.0.0.0:{port}/login?token="), link
        token = link.strip().split("token=", 1)[1]
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False) as client:  # noqa: S501 - our own self-signed test certificate
            for _ in range(100):  # the server starts listening just after it prints the link
                try:
                    answer = client.get(f"/login?token={token}")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()
            assert client.get("/").status_code == 200
            with pytest.raises(httpx.TransportError):  # plain HTTP is not served
                httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
