"""Upload isolation on a real ``childsafe serve`` process: a slow upload gets
503 with Retry-After while other uploads are matched and /v1/health answers;
an exact digest match is answered with what could not be looked at; a flood
beyond the queue is refused at once."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from builders import coffee, flat_png, jpeg_of_image
from PIL import ImageOps
from support import Server, invoke


@pytest.mark.slow
def test_a_slow_upload_gets_503_while_other_uploads_are_matched(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "CHILDSAFE_DECODE_SECONDS": "0.5", "CHILDSAFE_DECODE_PROCESSES": "1"}
    known = tmp_path / "coffee.png"
    coffee().save(known)
    # The bank is made under the default decode limit: on a loaded machine its variants can take over 0.5 s.
    home = Path(cli_env["CHILDSAFE_HOME"])
    assert invoke(["bank", "create", "known"], home).exit_code == 0
    added = invoke(["bank", "add", "known", str(known)], home)
    assert added.exit_code == 0, added.output
    # 225 megapixels of one colour (under the 250-megapixel limit): 3 MB, and
    # about a second to decode (144 took 0.48 s on a fast machine, too near the 0.5 s limit).
    slow = flat_png(15_000, 15_000)
    copies = {
        "bordered.jpg": (jpeg_of_image(ImageOps.expand(coffee(), border=50, fill=(40, 120, 200))), "trim"),
        "mirrored.jpg": (jpeg_of_image(ImageOps.mirror(coffee())), "flipy"),
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
