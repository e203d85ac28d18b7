"""``warroom worker`` under systemd or ``| tee``: when its output's reader has gone, the first SIGTERM still
stops it. Its signal handler printed before it set the stop, the print raised BrokenPipeError, and the worker
ran on until a second signal (systemd waits out its timeout, then kills)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import wait_until


def test_the_first_sigterm_stops_a_worker_whose_output_pipe_is_closed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WARROOM_DATA_DIR": str(tmp_path),
        "WARROOM_CONFIG": str(EXAMPLE_CONFIG),
        "COLUMNS": "200",
    }
    env.pop("WARROOM_DATABASE_URL", None)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "warroom", "worker"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert worker.stdout is not None
        started = worker.stdout.readline()  # "worker NAME on …": it runs
        assert b"worker" in started, started
        worker.stdout.close()  # the reader goes away
        # Both lanes running, in the loop a stop ends (a signal before then met the start-up instead).
        wait_until(lambda: (tmp_path / "worker.log").read_text().count(" started (poll every") == 2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
