"""What the fuzz targets share: writing the generated seed corpus, starting
atheris, and (for long runs) recording findings instead of stopping at the first.

A target is run as a script: ``python tests/fuzz/fuzz_x.py [libFuzzer flags] [CORPUS_DIR]``.
Without a corpus folder the seeds go to a fresh temporary one; with one, seeds
are added to it (so a long run can keep what it learned between restarts).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

__all__ = ["FINDINGS_SETTING", "STRICT_SETTING", "report_or_raise", "run"]

#: Set to a folder to keep fuzzing past a disallowed exception: each distinct
#: one (type and place raised) is written there once, as ``<key>.txt`` (its
#: traceback) and ``<key>.input`` (the bytes that raised it). Used by the long
#: run in bench/fuzz_readers.py; the bounded test lets the first one stop the run.
FINDINGS_SETTING = "CHILDSAFE_FUZZ_FINDINGS"
#: Set to 1 to stop at known issues too (to check that their fixes have landed).
STRICT_SETTING = "CHILDSAFE_FUZZ_STRICT"


def our_frame(exc: BaseException) -> str:
    """``module.py:function`` of the innermost childsafe frame ``exc`` passed through."""
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}childsafe{os.sep}" in f.filename]
    return f"{Path(ours[-1].filename).name}:{ours[-1].name}" if ours else "?"


def report_or_raise(exc: BaseException, data: bytes, known: dict[tuple[str, type[BaseException]], str]) -> None:
    """Raise ``exc`` (libFuzzer then saves the input and stops), or record it
    when ``CHILDSAFE_FUZZ_FINDINGS`` names a folder.

    ``known`` maps (``our_frame``, exception type) to why an issue is let
    through: it is fixed elsewhere, with a strict-xfail regression test in
    tests/test_fuzz.py. Known issues never stop a run (unless
    ``CHILDSAFE_FUZZ_STRICT=1``); they are recorded with a ``known-`` prefix."""
    folder = os.environ.get(FINDINGS_SETTING)
    is_known = (our_frame(exc), type(exc)) in known and os.environ.get(STRICT_SETTING) != "1"
    if not folder:
        if is_known:
            return
        raise exc
    frames = traceback.extract_tb(exc.__traceback__)
    place = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    key = ("known-" if is_known else "") + hashlib.sha1(f"{type(exc).__name__} {place}".encode()).hexdigest()[:12]
    text = Path(folder) / f"{key}.txt"
    if text.exists():
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{key}.input").write_bytes(data)
    text.write_text("".join(traceback.format_exception(exc)))
    print(f"FINDING {key}: {type(exc).__name__} at {place}", file=sys.stderr, flush=True)


def run(test_one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    """Write ``seeds`` into the corpus folder (given last on the command line,
    or a temporary one) and fuzz ``test_one_input`` with the command line's flags."""
    argv = list(sys.argv)
    temporary = None
    given = [a for a in argv[1:] if not a.startswith("-")]
    if given:
        corpus = Path(given[0])
        corpus.mkdir(parents=True, exist_ok=True)
    else:
        temporary = tempfile.mkdtemp(prefix="childsafe-fuzz-")
        corpus = Path(temporary)
        argv.append(temporary)
    for seed in seeds:
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)
    try:
        atheris.Setup(argv, test_one_input)
        atheris.Fuzz()
    finally:  # atheris.Fuzz exits the process itself; this is for the error paths
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
