"""Start ``warroom serve`` as a real subprocess on a free port, and run CLI commands as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.peers import free_port, wait_until


class ServerProcess:
    """``warroom serve`` on 127.0.0.1; ``extra_env`` adds to (or overrides) the environment, ``extra_args``
    go after the command line (e.g. ``["--no-worker"]``). Use ``with`` or ``start()``/``stop()``."""

    def __init__(
        self,
        *,
        database_url: str,
        config: Path | None,
        data_dir: Path,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.config = config
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "warroom",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
        ]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, "WARROOM_DATA_DIR": str(self.data_dir), **self.extra_env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self.ready, timeout=timeout)
        except AssertionError as exc:
            self.stop()
            raise RuntimeError(f"warroom serve did not become ready: {self.log()}") from exc
        return self

    def ready(self) -> bool:
        """True once /healthz answers 200; raises if the process has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"warroom serve exited with {self.process.returncode}: {self.log()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def run_cli(
    *args: str,
    url: str | None = None,
    token: str | None = None,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    answer: str = "",
) -> subprocess.CompletedProcess[str]:
    """``warroom ARGS`` with the environment plus ``env`` (and the URL, token and database given), and
    ``answer`` on its standard input; with ``check``, a non-zero exit fails the test."""
    merged = {**os.environ, **(env or {})}
    if url:
        merged["WARROOM_URL"] = url
    if token:
        merged["WARROOM_TOKEN"] = token
    if database_url:
        merged["WARROOM_DATABASE_URL"] = database_url
    merged["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "warroom", *args],
        env=merged,
        capture_output=True,
        text=True,
        timeout=60,
        input=answer,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"warroom {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}"
        )
    return result


def create_token(
    name: str, role: str, *, database_url: str | None = None, env: dict[str, str] | None = None
) -> str:
    """A new API token: the last line ``warroom token create`` prints, after ``warroom db upgrade`` (as
    ``make run`` does): a token is made only in a database that is there."""
    run_cli("db", "upgrade", database_url=database_url, env=env)
    created = run_cli("token", "create", "--name", name, "--role", role, database_url=database_url, env=env)
    return created.stdout.strip().splitlines()[-1]


@contextmanager
def serve_for_cli(
    config: Path, data_dir: Path, *, token_name: str, role: str, extra_env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """``warroom serve`` with its embedded worker (polling every 0.05 s) on a SQLite file in ``data_dir``,
    configured through the environment; yields that environment with WARROOM_URL and a WARROOM_TOKEN for
    ``role``: all the CLI needs to reach it (``run_cli(..., env=...)``)."""
    database_url = f"sqlite:///{data_dir / 'e2e.db'}"
    env = {
        "WARROOM_DATA_DIR": str(data_dir),
        "WARROOM_DATABASE_URL": database_url,
        "WARROOM_CONFIG": str(config),
        "WARROOM_WORKER_POLL_INTERVAL": "0.05",
        **(extra_env or {}),
    }
    token = create_token(token_name, role, env=env)
    with ServerProcess(database_url=database_url, config=config, data_dir=data_dir, extra_env=env) as server:
        yield {**env, "WARROOM_URL": server.url, "WARROOM_TOKEN": token}
