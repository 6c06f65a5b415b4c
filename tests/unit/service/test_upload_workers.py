"""The service's upload workers: an upload past its time limit, over the
memory limit, or beyond the waiting queue is answered honestly (503 with
``Retry-After``, or ``incomplete`` beside an exact match), never with a
plain "no match"; other uploads and ``/v1/health`` go on meanwhile."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import skimage.data
from PIL import Image, ImageOps
from support import Server, run_cli

from childsafe.detect import ALL_QUERY_STEPS, PDQ_STEP
from childsafe.media import MediaLimits
from childsafe.service.decoding import UploadWorkers


def _png(width: int, height: int, rows: int | None = None) -> bytes:
    """A PNG of one colour, ``width`` x ``height``, with pixel data for
    ``rows`` rows (all by default). Written by hand: Pillow would need the
    whole picture in memory to write it, and a test needs only its bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes([90, 140, 200]) * width  # filter byte "none", then the pixels
    packer = zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _coffee() -> Image.Image:
    return Image.fromarray(skimage.data.coffee())


def test_an_upload_over_the_memory_limit_is_incomplete_and_the_next_goes_through() -> None:
    # Declares 240 megapixels (720 MB decoded, under the pixel limit) in a few bytes.
    huge = _png(15_000, 16_000, rows=10)
    normal = _jpeg(_coffee())
    workers = UploadWorkers(MediaLimits(), processes=1, memory_bytes=int(1.2 * 2**30))
    try:
        stopped = workers.prepare(huge, "huge.png", ALL_QUERY_STEPS)
        done = workers.prepare(normal, "coffee.jpg", ALL_QUERY_STEPS)
    finally:
        workers.close()
    assert stopped.incomplete == (PDQ_STEP, *ALL_QUERY_STEPS) and stopped.hashes.pdq is None
    assert stopped.hashes.sha256 == hashlib.sha256(huge).hexdigest()  # the digests are still there
    assert done.incomplete == () and done.hashes.pdq and done.hashes.error is None
    assert len(done.hashes.pdq_variants or {}) == 8 and done.query_keypoints is not None


def test_a_worker_stuck_past_its_time_is_killed_and_replaced() -> None:
    slow = _png(12_000, 12_000)  # 144 megapixels of one colour: seconds to decode
    normal = _jpeg(_coffee())
    # Killed long before the decoder's own alarm (30 s) would stop it.
    workers = UploadWorkers(MediaLimits(), processes=1, memory_bytes=None, kill_after=0.3)
    try:
        stopped = workers.prepare(slow, "slow.png", ALL_QUERY_STEPS)
        done = workers.prepare(normal, "coffee.jpg", ALL_QUERY_STEPS)  # on the worker that replaced it
    finally:
        workers.close()
    assert stopped.incomplete == (PDQ_STEP, *ALL_QUERY_STEPS)
    assert stopped.hashes.error == "preparing the upload took longer than 0.3 s; stopped; digests only"
    assert stopped.hashes.md5 == hashlib.md5(slow).hexdigest() and stopped.hashes.mime == "image/png"
    assert done.incomplete == () and done.hashes.pdq and done.hashes.error is None


@pytest.mark.slow
def test_a_slow_upload_gets_503_while_other_uploads_are_matched(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "CHILDSAFE_DECODE_SECONDS": "0.5", "CHILDSAFE_DECODE_PROCESSES": "1"}
    known = tmp_path / "coffee.png"
    _coffee().save(known)
    # The bank is made under the default decode limit: on a loaded machine its variants can take over 0.5 s.
    assert run_cli(["bank", "create", "known"], cli_env).returncode == 0
    added = run_cli(["bank", "add", "known", str(known)], cli_env)
    assert added.returncode == 0, added.stdout + added.stderr
    # 144 megapixels of one colour: under 2 MB, and seconds to decode.
    slow = _png(12_000, 12_000)
    copies = {
        "bordered.jpg": (_jpeg(ImageOps.expand(_coffee(), border=50, fill=(40, 120, 200))), "trim"),
        "mirrored.jpg": (_jpeg(ImageOps.mirror(_coffee())), "flipy"),
    }
    server = Server(env)
    try:
        matcher = server.client("matcher")
        health: list[int] = []
        done = threading.Event()

        def watch_health() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not done.wait(0.05):
                    health.append(client.get("/v1/health").status_code)

        watcher = threading.Thread(target=watch_health)
        watcher.start()
        # One worker: the copies wait while the slow one runs, and their own
        # time starts only when the worker takes them (before, the time spent
        # waiting counted, and a limit passed stopped every upload in flight).
        with ThreadPoolExecutor(3) as pool:
            stopped = pool.submit(matcher.post, "/v1/match", files={"file": ("slow.png", slow)})
            answers = {name: pool.submit(matcher.post, "/v1/match", files={"file": (name, data)})
                       for name, (data, _) in copies.items()}  # fmt: skip
            response = stopped.result()
            for name, answer in answers.items():
                matched = answer.result()
                assert matched.status_code == 200, matched.text
                transforms = [m["transform"] for m in matched.json()["matches"]]
                assert transforms and transforms[0].startswith(copies[name][1]), (name, transforms)
                assert "incomplete" not in matched.json()
        done.set()
        watcher.join()
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
        message = response.json()["error"]["message"]
        assert list(response.json()) == ["error"] and response.json()["error"]["status"] == 503
        assert message.startswith("decoding took longer than 0.5 s")
        assert health and set(health) == {200}
        assert matcher.post("/v1/hash", files={"file": ("slow.png", slow)}).status_code == 503

        # An exact digest match is answered, saying what could not be looked at.
        curator = server.client("curator")
        digest = hashlib.md5(slow).hexdigest()
        added = curator.post("/v1/banks/known/entries", json={"entries": [{"signal": "md5", "value": digest}]})
        assert added.status_code < 300, added.text
        exact = matcher.post("/v1/match", files={"file": ("slow.png", slow)})
        assert exact.status_code == 200
        assert [m["signal"] for m in exact.json()["matches"]] == ["md5"]
        assert exact.json()["incomplete"] == ["pdq", "dihedral", "trim", "caption", "grid", "keypoints", "full"]

        # More uploads than one worker and its queue of two: the rest are refused at once.
        with ThreadPoolExecutor(6) as pool:
            flood = list(pool.map(lambda _: matcher.post("/v1/match", files={"file": ("s.png", slow)}), range(6)))
        assert all(r.status_code == 200 or (r.status_code == 503 and "Retry-After" in r.headers) for r in flood)
        assert any("too many uploads" in r.json()["error"]["message"] for r in flood if r.status_code == 503)
    finally:
        server.stop()
