"""The service's upload workers: an upload past its time limit, over the
memory limit, or beyond the waiting queue is answered honestly (503 with
``Retry-After``, or ``incomplete`` beside an exact match), never with a
plain "no match"; other uploads and ``/v1/health`` go on meanwhile."""

from __future__ import annotations

import hashlib

from builders import coffee, flat_png, jpeg_of_image

from childsafe.detect import ALL_QUERY_STEPS, PDQ_STEP
from childsafe.media import MediaLimits
from childsafe.service.decoding import UploadWorkers


def test_an_upload_over_the_memory_limit_is_incomplete_and_the_next_goes_through() -> None:
    # Declares 240 megapixels (720 MB decoded, under the pixel limit) in a few bytes.
    huge = flat_png(15_000, 16_000, rows=10)
    normal = jpeg_of_image(coffee())
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
    slow = flat_png(12_000, 12_000)  # 144 megapixels of one colour: seconds to decode
    normal = jpeg_of_image(coffee())
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
