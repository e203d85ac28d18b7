"""Alerts by email: how many messages a second the mail intake stores (bounded, loopback only). Not part of
the test suite.

Starts ``warroom serve --mail-port`` on a fresh SQLite file (or ``--database-url``), makes one email
integration, and sends ``--messages`` messages over ``--connections`` SMTP connections at once (``smtplib``,
one thread each, many messages per connection, as an MTA's queue runner does). Subjects cycle over
``--alerts`` names, so the first message of each opens an alert and the rest update it (every message has
its own body, so each is a real update). Every message must be answered 250; the database must then hold
exactly ``--alerts`` alerts whose occurrences sum to ``--messages``. With ``--tls`` the server gets a
self-signed certificate (the openssl CLI) and each connection starts TLS before its first message.

Usage:  .venv/bin/python bench/mail_intake.py [--messages 3000] [--alerts 100] [--connections 4] [--tls]
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "warroom.yaml"
sys.path.insert(0, str(ROOT))

from tests.peers import free_port, self_signed_certificate, wait_until  # noqa: E402

from warroom.alerts.models import Alert  # noqa: E402
from warroom.auth import integrations  # noqa: E402
from warroom.auth.models import IntegrationType  # noqa: E402
from warroom.db import Database  # noqa: E402
from warroom.migrate import upgrade  # noqa: E402
from warroom.orgconfig import load_org_config  # noqa: E402


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _sender(
    port: int, key: str, numbers: range, alerts: int, failures: list[str], tls: ssl.SSLContext | None
) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        if tls is not None:
            client.starttls(context=tls)
        for number in numbers:
            mail = EmailMessage()
            mail["From"] = "nagios@mon.example"
            mail["Subject"] = f"** PROBLEM Service Alert: host{number % alerts}/disk is CRITICAL **"
            mail.set_content(f"DISK CRITICAL - free space: / {number % 97} MB\n")
            try:
                client.send_message(mail, to_addrs=[f"{key}@alerts.example"])
            except smtplib.SMTPException as exc:  # a refusal: counted, and the run fails
                failures.append(str(exc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--tls", action="store_true", help="STARTTLS on each connection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        database = Database(database_url)
        upgrade(database.engine)
        with database.write() as session:
            session.execute(Alert.__table__.delete())
            key = integrations.create_integration(
                session, org=load_org_config(CONFIG), name="bench-mail", type=IntegrationType.email
            ).key
        http_port, mail_port = free_port(), free_port()
        command = [sys.executable, "-m", "warroom", "serve", "--port", str(http_port), "--mail-port"]
        command += [str(mail_port), "--database-url", database_url, "--config", str(CONFIG)]
        trusting = None
        if args.tls:
            made = self_signed_certificate(scratch)
            if made is None:
                sys.exit("--tls needs the openssl CLI to make a certificate")
            command += ["--mail-tls-cert", made[0], "--mail-tls-key", made[1]]
            trusting = ssl.create_default_context(cafile=made[0])
        server = subprocess.Popen(
            command,
            env={**os.environ, "WARROOM_DATA_DIR": scratch},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: _ready(f"http://127.0.0.1:{http_port}"), timeout=30)
            failures: list[str] = []
            share = range(args.connections)
            threads = [
                threading.Thread(
                    target=_sender,
                    args=(
                        mail_port,
                        key,
                        range(n, args.messages, args.connections),
                        args.alerts,
                        failures,
                        trusting,
                    ),
                )
                for n in share
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        with database.read() as session:
            rows = session.scalar(select(func.count()).select_from(Alert))
            occurrences = session.scalar(select(func.sum(Alert.occurrences)))
        database.dispose()
    result = {
        "messages": args.messages,
        "connections": args.connections,
        "tls": args.tls,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(args.messages / elapsed),
        "alerts": rows,
        "occurrences": occurrences,
        "refused": len(failures),
    }
    print(json.dumps(result, indent=2))
    if failures or rows != args.alerts or occurrences != args.messages:
        sys.exit("FAILED: not every message was stored as expected")


if __name__ == "__main__":
    main()
