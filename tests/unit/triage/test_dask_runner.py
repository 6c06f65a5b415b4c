"""The Dask path of a scan (``childsafe/triage/dask_runner.py``) on a cluster
in this process (``LocalCluster(processes=False)``: its workers are threads
here, so a test can stand in for what a worker runs): a scan stopped part
way resumes on the cluster to the local report; a task that kills its
workers is reported, not dropped; workers of another childsafe, or that
cannot read the evidence, stop the scan before anything is written. (Real
worker processes, one of them killed: tests/e2e/test_scan_dask.py.)"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from builders import coffee, jpeg_of_image, write_file
from PIL import ImageEnhance
from support import free_port, invoke

from childsafe import dask_worker
from childsafe.config import Settings
from childsafe.errors import ChildsafeError, UsageError
from childsafe.supervised import TaskFailed
from childsafe.triage import ScanProgress, ScanRequest, dask_runner, scan_evidence

pytestmark = pytest.mark.slow  # a cluster and scans of a dozen pictures: seconds each


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def case(tmp_path: Path, home: Path) -> tuple[Path, Settings]:
    """12 photos, three of them the one a bank knows."""
    evidence = tmp_path / "evidence"
    for number in range(12):
        photo = coffee() if number % 4 == 0 else coffee().rotate(90).crop((0, 0, 200, 300))
        write_file(evidence / f"photo{number:02d}.jpg", jpeg_of_image(ImageEnhance.Brightness(photo).enhance(0.9)))
    write_file(tmp_path / "known.jpg", jpeg_of_image(coffee()))
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    assert invoke(["bank", "add", "police", str(tmp_path / "known.jpg"), "--category", "A"], home).exit_code == 0
    return evidence, Settings.from_env({"CHILDSAFE_HOME": str(home)})


def _items(out: Path) -> list[dict[str, Any]]:
    return list(json.loads((out / "report.json").read_text())["items"])


class _Stop(Exception):
    pass


def test_a_scan_stopped_part_way_resumes_on_the_cluster_to_the_local_report(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str
) -> None:
    evidence, settings = case
    scan_evidence(ScanRequest(evidence, "D", tmp_path / "local", workers=1), settings)

    def stop_after_five(progress: ScanProgress) -> None:
        if progress.files >= 5:
            raise _Stop

    out = tmp_path / "dask"
    with pytest.raises(_Stop):
        scan_evidence(ScanRequest(evidence, "D", out, scheduler=scheduler), settings, stop_after_five)
    resumed = scan_evidence(ScanRequest(evidence, "D", out, resume=True, scheduler=scheduler), settings)
    assert (resumed.done_before, resumed.read_now) == (5, 7)
    assert _items(out) == _items(tmp_path / "local")
    assert resumed.summary.matched_files == 3


def test_a_task_that_kills_every_worker_is_reported_as_an_item_that_could_not_be_read(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed.scheduler import KilledWorker

    evidence, settings = case
    read = dask_worker._Processes.read

    def poison(processes: Any, tasks: list[bytes]) -> list[bytes | TaskFailed]:  # in a worker thread here
        if any(pickle.loads(task).label == "photo03.jpg" for task in tasks):
            last = SimpleNamespace(address="tcp://127.0.0.1:1")  # a WorkerState, as far as the message goes
            raise KilledWorker("photo03", last, 3)  # what the scheduler says after four deaths
        return read(processes, tasks)

    monkeypatch.setattr(dask_worker._Processes, "read", poison)
    result = scan_evidence(ScanRequest(evidence, "D", tmp_path / "out", scheduler=scheduler), settings)
    items = {item["path"]: item for item in _items(tmp_path / "out")}
    assert len(items) == 12 and result.summary.errors == 1
    assert items["photo03.jpg"]["error"] == (
        "cannot be read: worker killed: every Dask worker that ran it died (distributed's KilledWorker)"
    )
    assert items["photo04.jpg"]["error"] is None and items["photo04.jpg"]["matches"]


def test_workers_of_another_childsafe_stop_the_scan_before_anything_is_written(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence, settings = case
    monkeypatch.setattr(dask_runner, "_worker_facts", lambda evidence: ("0.0.1 (code 000000000000)", None, False))
    with pytest.raises(UsageError, match=r"^Dask worker \S+ runs childsafe 0\.0\.1 \(code 0+\), this one "):
        scan_evidence(ScanRequest(evidence, "D", tmp_path / "out", scheduler=scheduler), settings)
    assert not (tmp_path / "out").exists()


def test_workers_that_cannot_read_the_evidence_stop_the_scan(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence, settings = case
    facts = dask_runner._worker_facts
    monkeypatch.setattr(dask_runner, "_worker_facts", lambda path: facts(path + "-not-mounted-here"))
    with pytest.raises(UsageError, match=r"cannot read the evidence at .*evidence: No such file or directory$"):
        scan_evidence(ScanRequest(evidence, "D", tmp_path / "out", scheduler=scheduler), settings)


def test_a_task_is_sent_with_its_absolute_path(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence, settings = case
    seen: list[str] = []
    read = dask_worker._Processes.read

    def record(processes: Any, tasks: list[bytes]) -> list[bytes | TaskFailed]:
        seen.extend(pickle.loads(task).path for task in tasks)
        return read(processes, tasks)

    monkeypatch.setattr(dask_worker._Processes, "read", record)
    monkeypatch.chdir(evidence.parent)
    scan_evidence(ScanRequest(Path("evidence"), "D", tmp_path / "out", scheduler=scheduler), settings)
    assert len(seen) == 12 and all(Path(path).is_absolute() for path in seen)


def test_a_scheduler_address_must_be_one() -> None:
    with pytest.raises(UsageError) as caught:
        dask_runner.check_address("127.0.0.1:8786")
    assert caught.value.field == "scheduler"
    assert caught.value.worded("--scheduler").startswith("--scheduler must be a Dask scheduler's address")


def test_workers_that_cannot_load_the_index_stop_the_scan_in_one_line(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str
) -> None:
    evidence, settings = case
    # The workers' reading processes are given a database that nothing answers at.
    unreachable = replace(settings, database_url=f"postgresql+psycopg://childsafe@127.0.0.1:{free_port()}/none")
    with pytest.raises(ChildsafeError) as caught, dask_runner.DaskPool(scheduler, unreachable, evidence):
        pass
    assert str(caught.value).startswith(
        "a Dask worker could not load the banks' index (a worker process could not start: StorageError: "
    )
    assert str(caught.value).endswith(
        "): every worker needs the scan's database and CHILDSAFE_HOME path (docs/triage.md, scans on several machines)"
    )
    assert "\n" not in str(caught.value)
    # The plugin was removed: the next scan's workers load the index as usual.
    result = scan_evidence(ScanRequest(evidence, "D", tmp_path / "again", scheduler=scheduler), settings)
    assert result.summary.matched_files == 3


def test_a_dask_scan_keeps_an_unmatched_videos_frames_as_a_local_scan_does(
    tmp_path: Path, case: tuple[Path, Settings], scheduler: str
) -> None:
    import sqlite3

    from builders import panning_frames, video_of

    evidence, settings = case
    write_file(evidence / "clip.mp4", video_of(panning_frames(30, seed=2), fps=10))

    def frames(out: Path) -> list[tuple[Any, ...]]:
        with sqlite3.connect(out / "case.sqlite") as db:
            return db.execute("SELECT id, frame_count, hashes, timestamps FROM item_frames ORDER BY id").fetchall()

    scan_evidence(ScanRequest(evidence, "V", tmp_path / "local", workers=1), settings)
    scan_evidence(ScanRequest(evidence, "V", tmp_path / "dask", scheduler=scheduler), settings)
    kept = frames(tmp_path / "dask")
    assert len(kept) == 1 and kept[0][1] >= 3  # the video's, and no picture's
    assert kept == frames(tmp_path / "local")


def test_workers_here_and_a_scheduler_together_are_refused_not_ignored(tmp_path: Path, home: Path) -> None:
    evidence, out = tmp_path / "evidence", tmp_path / "out"
    write_file(evidence / "photo.jpg", jpeg_of_image(coffee()))
    given = ["scan", str(evidence), "--case", "W", "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]
    refused = invoke([*given, "--workers", "2"], home)
    assert refused.exit_code == 2
    assert "a Dask cluster has its own: give one or the other" in refused.output
    assert not out.exists()


def test_a_cluster_left_without_workers_stops_the_scan_instead_of_waiting_for_ever(
    tmp_path: Path, case: tuple[Path, Settings]
) -> None:
    import dask.config
    from distributed import LocalCluster

    evidence, settings = case
    for number in range(40):  # batches of 16 files: several, so some are left when the workers go
        write_file(evidence / "more" / f"photo{number:02d}.jpg", jpeg_of_image(coffee().rotate(number)))
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:

        def lose_the_workers(progress: ScanProgress) -> None:
            if cluster.workers:
                cluster.scale(0)

        started = time.monotonic()
        with dask.config.set({"distributed.comm.timeouts.connect": "3s"}), pytest.raises(ChildsafeError) as stopped:
            scan_evidence(
                ScanRequest(evidence, "L", out, scheduler=cluster.scheduler_address), settings, lose_the_workers
            )
    assert "has had no worker for 3 s" in str(stopped.value) and "resume the scan" in str(stopped.value)
    assert time.monotonic() - started < 30
    assert (out / ".childsafe-scan" / "state.sqlite").is_file()  # what was read is saved, to resume


def test_workers_under_a_nanny_are_refused_unless_dask_lets_them_start_processes(
    tmp_path: Path, case: tuple[Path, Settings]
) -> None:
    import dask.config
    from distributed import LocalCluster

    evidence, settings = case
    # A nanny makes its worker a daemonic process (Dask's default), which cannot start reading processes.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with pytest.raises(UsageError) as refused:
            scan_evidence(
                ScanRequest(evidence, "N", tmp_path / "refused", scheduler=cluster.scheduler_address), settings
            )
    worker, _, said = str(refused.value).partition(" is a daemonic")
    assert worker.startswith("Dask worker tcp://127.0.0.1:")
    assert said == (
        " process (a nanny's worker), which cannot start the processes that read the evidence: start workers"
        " with `dask worker --no-nanny`, or with DASK_DISTRIBUTED__WORKER__DAEMON=False in their environment"
    )
    assert not (tmp_path / "refused").exists()
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
    ):
        result = scan_evidence(
            ScanRequest(evidence, "N", tmp_path / "out", scheduler=cluster.scheduler_address), settings
        )
    assert result.summary.matched_files == 3


def test_a_dask_worker_does_not_import_the_reading_code_its_reading_processes_run() -> None:
    import subprocess
    import sys

    # What a Dask worker unpickles for a scan: the functions it runs, the plugin (its Settings), pickled tasks.
    probe = (
        "import sys, childsafe.dask_worker, childsafe.config;"
        "print(sorted(m for m in sys.modules if m.startswith(('childsafe.triage', 'childsafe.index'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
