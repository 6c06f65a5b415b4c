"""``childsafe scan --scheduler`` on a real Dask cluster: a scheduler and two
workers, each its own process; one worker killed (SIGKILL) part way; the
report is the very report a local scan gives. And the same cluster as three
machines: each process in a network namespace of its own, on one bridge."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from builders import coffee, flat_png, jpeg_of_image, panning_frames, tar_of, video_of, write_file
from PIL import Image, ImageEnhance
from support import REPO, free_port, invoke, run_cli


def _evidence(tmp_path: Path, home: Path) -> Path:
    """80 photos in four folders (a quarter of them the known one), a zip, an unmatched video
    (a contact sheet); a bank knowing one photo."""
    evidence = tmp_path / "evidence"
    base = coffee()
    others = [Image.fromarray(getattr(skimage.data, name)()) for name in ("astronaut", "chelsea", "rocket")]
    for number in range(80):
        photo = base if number % 4 == 0 else others[number % 4 - 1]
        variant = ImageEnhance.Brightness(photo).enhance(0.6 + number / 100).rotate(number * 4.5)
        write_file(evidence / f"dir{number % 4}" / f"photo{number:03d}.jpg", jpeg_of_image(variant))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("inside/coffee.jpg", jpeg_of_image(base))
        zipped.writestr("inside/other.jpg", jpeg_of_image(base.rotate(30)))
    write_file(evidence / "archive.zip", archive.getvalue())
    write_file(evidence / "clip.mp4", video_of(panning_frames(30, seed=2), 25))
    write_file(tmp_path / "known" / "coffee.jpg", jpeg_of_image(base))
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    added = invoke(["bank", "add", "police", str(tmp_path / "known" / "coffee.jpg"), "--category", "A"], home)
    assert added.exit_code == 0, added.output
    return evidence


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=handle, stderr=handle)


def _wait_for_workers(log: Path, count: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if log.read_text(errors="replace").count("Register worker") >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the Dask workers did not register:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def cluster(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A Dask scheduler and two workers (no nanny: a killed worker stays dead), importing this childsafe."""
    env = cli_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    scheduler = _start(
        ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env, logs / "scheduler.log"
    )
    worker_args = ["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    workers = [_start(worker_args, env, logs / f"worker{n}.log") for n in range(2)]
    try:
        _wait_for_workers(logs / "scheduler.log", 2, scheduler)
        yield address, workers
    finally:
        _stop(workers)
        _stop([scheduler])


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop ``processes`` (SIGTERM, then SIGKILL after 20 s). Workers go
    before their scheduler, as an operator stops them: a worker told to stop
    by its signal and by its closing scheduler at once can hang (Dask's race)."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _done(state: Path) -> int:
    try:
        with sqlite3.connect(state, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM done").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_scan_on_dask_with_a_worker_killed_part_way_gives_the_local_report(
    tmp_path: Path, cli_env: dict[str, str], cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, workers = cluster
    home = Path(cli_env["CHILDSAFE_HOME"])
    evidence = _evidence(tmp_path, home)
    local = tmp_path / "local"
    reference = invoke(["scan", str(evidence), "--case", "D", "--out", str(local), "--workers", "1"], home)
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "dask"
    scan = subprocess.Popen(
        [sys.executable, "-m", "childsafe", "scan", str(evidence), "--case", "D", "--out", str(out)]
        + ["--scheduler", address, "--json"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = out / ".childsafe-scan" / "state.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scan.poll() is None and _done(state) < 10:
        time.sleep(0.02)
    assert scan.poll() is None and _done(state) < 82, "the scan was not caught part way"
    workers[0].send_signal(signal.SIGKILL)  # it holds a task or two: they run again on the other
    stdout, stderr = scan.communicate(timeout=120)
    assert scan.returncode == 0, stderr
    assert workers[0].wait() == -signal.SIGKILL and workers[1].poll() is None

    figures = json.loads(stdout)
    assert figures["read_now"] == 82 and figures["done_before"] == 0
    report = json.loads((out / "report.json").read_text())
    expected = json.loads((local / "report.json").read_text())
    assert report["items"] == expected["items"] and report["summary"] == expected["summary"]
    assert 2 < report["summary"]["matched_files"] < 80 and report["summary"]["errors"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    local_manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["contact_sheets"] == local_manifest["contact_sheets"] and len(manifest["contact_sheets"]) == 1
    assert (out / "case.sqlite").is_file() and not (out / ".childsafe-scan").exists()


@pytest.mark.slow
def test_an_item_that_hangs_a_dask_workers_reader_is_reported_as_locally_and_the_rest_read(
    tmp_path: Path, cli_env: dict[str, str], cluster: tuple[str, list[subprocess.Popen[bytes]]]
) -> None:
    address, workers = cluster
    home = Path(cli_env["CHILDSAFE_HOME"])
    evidence = tmp_path / "evidence"
    base = coffee()
    others = [Image.fromarray(getattr(skimage.data, name)()) for name in ("astronaut", "chelsea", "rocket")]
    slow = flat_png(14_000, 14_000)  # seconds of C code to decode: more than the second an item is given
    members = [(b"before.jpg", jpeg_of_image(base)), (b"slow.png", slow), (b"after.jpg", jpeg_of_image(others[1]))]
    write_file(evidence / "phone.tar", tar_of(members))
    for number in range(6):  # two of them the known picture
        write_file(evidence / f"photo{number}.jpg", jpeg_of_image(base if number % 3 == 0 else others[number % 3]))
    write_file(tmp_path / "known" / "coffee.jpg", jpeg_of_image(base))
    assert invoke(["bank", "create", "police", "--scheme", "uk"], home).exit_code == 0
    added = invoke(["bank", "add", "police", str(tmp_path / "known" / "coffee.jpg"), "--category", "A"], home)
    assert added.exit_code == 0, added.output
    limit = {"CHILDSAFE_ITEM_SECONDS": "1"}  # the scanning machine's; the workers' own environment has none
    local, out = tmp_path / "local", tmp_path / "dask"
    reference = invoke(["scan", str(evidence), "--case", "H", "--out", str(local), "--workers", "1"], home, env=limit)
    assert reference.exit_code == 0, reference.output

    scan = run_cli(["scan", str(evidence), "--case", "H", "--out", str(out), "--scheduler", address], cli_env | limit)
    assert scan.returncode == 0, scan.stderr
    report = json.loads((out / "report.json").read_text())
    items = {item["path"]: item for item in report["items"]}
    stopped = items["phone.tar!/slow.png"]
    assert stopped["error"].startswith("time limit: no progress for 1 s (raise CHILDSAFE_ITEM_SECONDS)")
    assert stopped["sha1"] == hashlib.sha1(slow).hexdigest()  # digested, not decoded
    assert items["phone.tar!/before.jpg"]["category"] == "A" and items["phone.tar!/after.jpg"]["error"] is None
    expected = json.loads((local / "report.json").read_text())
    assert report["items"] == expected["items"] and report["summary"] == expected["summary"]
    assert report["summary"]["errors"] == 1 and report["summary"]["matched_files"] == 3
    assert all(worker.poll() is None for worker in workers)  # only their reading process was stopped


def test_a_scheduler_address_that_is_not_one_is_refused_naming_the_option(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "evidence").mkdir()
    result = run_cli(
        ["scan", str(tmp_path / "evidence"), "--case", "D", "--out", str(tmp_path / "out")]
        + ["--scheduler", "127.0.0.1:8786"],
        cli_env,
    )
    assert result.returncode == 2
    assert "--scheduler must be a Dask scheduler's address such as tcp://HOST:PORT" in result.stderr


def test_a_scheduler_that_does_not_answer_is_reported_in_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "evidence").mkdir()
    result = run_cli(
        ["scan", str(tmp_path / "evidence"), "--case", "D", "--out", str(tmp_path / "out")]
        + ["--scheduler", f"tcp://127.0.0.1:{free_port()}"],
        cli_env | {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"},
    )
    assert result.returncode == 2, result.stderr
    assert "no Dask scheduler answered at tcp://127.0.0.1:" in result.stderr
    assert "--scheduler" in result.stderr


#: iproute2's ``ip`` (in sbin, which a user's PATH may leave out).
IP = shutil.which("ip", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _ip(*args: str) -> None:
    subprocess.run([str(IP), *args], check=True, capture_output=True)


@pytest.fixture
def hosts(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """A Dask scheduler and two workers, each in a network namespace of its own
    (three "machines" on one bridge with the scanning machine, 10.213.N.0/24):
    they reach each other and the scan only over that network. Skipped where
    namespaces cannot be made (not root, or no iproute2)."""
    import random

    if os.geteuid() != 0 or IP is None:
        pytest.skip("network namespaces need root and iproute2 (./run tests installs it)")
    tag = f"{random.randrange(16**4):04x}"
    subnet = f"10.213.{random.randrange(1, 250)}"
    bridge, spaces = f"csbr{tag}", [f"cs{tag}{role}" for role in ("s", "w1", "w2")]
    try:
        _ip("link", "add", bridge, "type", "bridge")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network bridge here: {exc.stderr.decode(errors='replace').strip()}")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _ip("addr", "add", f"{subnet}.254/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for number, space in enumerate(spaces, start=1):
            outside, inside = f"vh{tag}{number}", f"vn{tag}{number}"
            _ip("netns", "add", space)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", space)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("netns", "exec", space, str(IP), "addr", "add", f"{subnet}.{number}/24", "dev", inside)
            _ip("netns", "exec", space, str(IP), "link", "set", inside, "up")
            _ip("netns", "exec", space, str(IP), "link", "set", "lo", "up")
        env = cli_env | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        logs = tmp_path / "dask-logs"
        logs.mkdir()

        def start(space: str, args: list[str], log: Path) -> None:
            with open(log, "wb") as handle:
                command = [str(IP), "netns", "exec", space, sys.executable, "-m", "dask", *args, "--no-dashboard"]
                processes.append(subprocess.Popen(command, env=env, stdout=handle, stderr=handle))

        address = f"tcp://{subnet}.1:8786"
        start(spaces[0], ["scheduler", "--host", f"{subnet}.1", "--port", "8786"], logs / "scheduler.log")
        for number, space in enumerate(spaces[1:], start=2):
            worker = ["worker", address, "--host", f"{subnet}.{number}", "--nthreads", "1", "--no-nanny"]
            start(space, worker, logs / f"worker{number}.log")
        _wait_for_workers(logs / "scheduler.log", 2, processes[0])
        yield address, logs
    finally:
        _stop(processes[1:])
        _stop(processes[:1])
        for space in spaces:
            subprocess.run([str(IP), "netns", "delete", space], capture_output=True)
        subprocess.run([str(IP), "link", "delete", bridge], capture_output=True)


@pytest.mark.slow
def test_a_scan_on_workers_in_other_network_namespaces_gives_the_local_report(
    tmp_path: Path, cli_env: dict[str, str], hosts: tuple[str, Path]
) -> None:
    address, logs = hosts
    home = Path(cli_env["CHILDSAFE_HOME"])
    evidence = _evidence(tmp_path, home)
    local, out = tmp_path / "local", tmp_path / "dask"
    reference = invoke(["scan", str(evidence), "--case", "N", "--out", str(local), "--workers", "1"], home)
    assert reference.exit_code == 0, reference.output
    scan = run_cli(["scan", str(evidence), "--case", "N", "--out", str(out), "--scheduler", address], cli_env)
    assert scan.returncode == 0, scan.stderr
    report = json.loads((out / "report.json").read_text())
    expected = json.loads((local / "report.json").read_text())
    assert report["items"] == expected["items"] and report["summary"] == expected["summary"]
    # The only workers were the two in their namespaces, at their own addresses.
    subnet = address.removeprefix("tcp://").rsplit(".", 1)[0]
    registered = (logs / "scheduler.log").read_text()
    assert f"tcp://{subnet}.2:" in registered and f"tcp://{subnet}.3:" in registered
