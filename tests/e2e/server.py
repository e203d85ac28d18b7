"""Start ``warroom serve`` as a real subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
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
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"warroom serve exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"warroom serve did not become ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
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
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if url:
        env["WARROOM_URL"] = url
    if token:
        env["WARROOM_TOKEN"] = token
    if database_url:
        env["WARROOM_DATABASE_URL"] = database_url
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "warroom", *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"warroom {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result
