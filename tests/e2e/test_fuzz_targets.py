"""Bounded coverage-guided fuzzing of the archive readers and bank-file parsers
(the atheris targets in tests/fuzz/). What fuzzing found is held by
tests/unit/banks/test_fuzz_findings_formats.py and tests/unit/triage/test_fuzz_findings_containers.py.

Each target runs in its own process (atheris instruments the modules it
imports, so it must import them first) for a fixed number of inputs; the long
run is bench/fuzz_readers.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

FUZZ = REPO / "tests" / "fuzz"


@pytest.mark.slow  # 5-20 s each: atheris starts, then 3,000 inputs
@pytest.mark.parametrize("target", ["fuzz_containers.py", "fuzz_bank_formats.py"])
def test_fuzz_target_finds_nothing_in_3000_inputs(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris has wheels for Linux x86_64 only (the test extra installs it there)")
    corpus = tmp_path / "corpus"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CHILDSAFE_FUZZ_FINDINGS", None)  # stop at the first finding
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ / target),
            "-runs=3000",
            "-max_len=4096",
            "-timeout=60",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    # libFuzzer counts the corpus it was given on top of -runs at times ("Done 3010 runs").
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done is not None and int(done.group(1)) >= 3000, run.stderr[-2000:]
    assert len(list(corpus.iterdir())) >= 7, "the generated seeds were not written"
