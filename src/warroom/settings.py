"""Runtime settings, read from the environment (``WARROOM_*``)."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Seconds a SQLite write waits for the lock before giving up ("database is locked", answered 503).
DEFAULT_BUSY_TIMEOUT = 30.0
# SQLite's ``PRAGMA synchronous`` levels. SQLite reads any other word as NORMAL, silently: a typo (FULLL)
# would weaken durability without a word, so only these are taken.
SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


class Settings(BaseSettings):
    # An empty variable (VAR= in an env file or a compose file) means unset, as it does to people. No float
    # setting takes inf or nan (1e400 reads as inf): a timeout or an interval of inf overflows where it is
    # used (a thread's wait, a timedelta) and kills that thread.
    model_config = SettingsConfigDict(
        env_prefix="WARROOM_", extra="ignore", env_ignore_empty=True, allow_inf_nan=False
    )

    data_dir: Path = Field(default=Path("var"), description="Where the SQLite file and local state live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to a SQLite file in data_dir."
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return database_url(value)

    config: Path | None = Field(default=None, description="The YAML org file.")
    host: str = "127.0.0.1"
    # uvicorn would bind a larger number modulo 65536 (99999 listens on 34463) while saying 99999.
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="Base URL people reach the server at.")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return public_url(value)

    forwarded_allow_ips: str | None = Field(
        default=None,
        description="The reverse proxies (comma-separated IP addresses or CIDR networks, or * alone) whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; unset: none, the client address is the "
        "connection's.",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        return forwarded_allow_ips(value)

    max_body_bytes: int = Field(default=1024 * 1024, description="Requests with a larger body get 413.")
    max_intake_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="The body limit of the intake routes whose senders post a whole alert group at once "
        "(Alertmanager, Grafana): about 17,000 Kubernetes alerts. Larger bodies get 413.",
    )
    # Slow clients (server.py): a request that does not arrive in time gets 408 and its connection is closed.
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's headers from their first byte (or connecting).",
    )
    http_body_timeout: float = Field(
        default=20.0,
        gt=0,
        le=86400,
        description="Seconds a request's body has to arrive, plus one per http_body_min_rate bytes received.",
    )
    http_body_min_rate: int = Field(
        default=500,
        ge=0,
        description="Bytes per second a slow body must keep up past http_body_timeout; 0: none, the body has "
        "http_body_timeout however large it is.",
    )
    sqlite_synchronous: str = Field(
        default="FULL", description="SQLite synchronous pragma; FULL keeps acknowledged writes on power loss."
    )

    @field_validator("sqlite_synchronous")
    @classmethod
    def _synchronous(cls, value: str) -> str:
        return sqlite_synchronous(value)

    sqlite_busy_timeout: float = Field(
        default=DEFAULT_BUSY_TIMEOUT,
        gt=0,
        le=3600,
        description="Seconds a SQLite write waits for the write lock; past it the request gets 503 (retry).",
    )
    postgres_lock_timeout: float = Field(
        default=DEFAULT_BUSY_TIMEOUT,
        gt=0,
        le=3600,
        description="Seconds a PostgreSQL statement waits for another session's lock (lock_timeout); past it "
        "the request gets 503 (retry).",
    )
    run_worker: bool = True
    worker_poll_interval: float = Field(
        default=0.5, gt=0, le=3600, description="Seconds between polls when idle."
    )
    worker_batch: int = Field(default=50, ge=1, description="Jobs claimed per transaction.")
    worker_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Deliveries run at once per worker, on SQLite too; other jobs too on PostgreSQL "
        "(SQLite: one at a time).",
    )
    worker_peer_limit: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Deliveries to one peer (a webhook's host, a mail server) at once per worker; "
        "unset: half of worker_concurrency.",
    )
    worker_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="A claimed job whose worker died is retried after this long.",
    )
    reload_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How often a process looks for an org file reload announced by another (warroom.reload).",
    )
    job_retry_base_seconds: float = Field(
        default=5.0, gt=0, le=86400, description="First retry delay; doubles."
    )
    job_retry_cap_seconds: float = Field(default=600.0, gt=0, le=86400, description="Longest retry delay.")
    secret_key: str | None = Field(
        default=None,
        description="Signs links (acknowledge from a page) and keys the timeline hash chain (audit verify); "
        "generated into data_dir/secret_key if unset.",
    )
    # Notification delivery: defaults for email channels that leave these out, and the webhook key.
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "warroom@localhost"
    webhook_secret: str | None = Field(default=None, description="Signs webhooks whose channel sets none.")
    # Alerts by email (alerts.mail): off unless a port is set.
    mail_intake_port: int | None = Field(
        default=None, ge=1, le=65535, description="Listen for SMTP on this port: alerts by email."
    )
    mail_intake_host: str = Field(default="127.0.0.1", description="Address the mail intake listens on.")
    mail_intake_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Messages larger than this are refused (552)."
    )
    mail_intake_tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain: the mail intake offers STARTTLS."
    )
    mail_intake_tls_key: Path | None = Field(
        default=None, description="PEM private key of the certificate (default: in the certificate file)."
    )
    mail_intake_require_tls: bool = Field(
        default=True,
        description="With a certificate: refuse a message until the sender has started TLS (530).",
    )
    notify_max_attempts: int = Field(default=8, ge=1, description="Tries before a delivery is a dead letter.")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        from sqlalchemy.engine import URL

        # Built, not formatted: SQLAlchemy reads %XX, ? and # in a URL's path as escapes, a query and a
        # fragment, so a data directory named a%20b or q?x would put the file elsewhere than the secret key.
        file = (self.data_dir / "warroom.db").resolve()
        return URL.create("sqlite", database=str(file)).render_as_string(hide_password=False)

    def resolved_secret_key(self) -> bytes:
        """WARROOM_SECRET_KEY, else a random key kept in data_dir (created once, readable only by us)."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        try:
            return path.read_bytes().strip()
        except (FileNotFoundError, NotADirectoryError):
            pass  # made below (a data directory that is a file: said below, in one line)
        import contextlib
        import secrets
        import tempfile

        make_directory(path.parent)
        # Write a complete file aside, then link it into place: atomic, and the first process wins.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        return path.read_bytes().strip()

    def existing_secret_key(self) -> bytes | None:
        """The secret key if one is set or kept in data_dir; None rather than creating one (a check such as
        ``audit verify`` needs the server's key, not a new one)."""
        if self.secret_key:
            return self.secret_key.encode()
        try:
            return (self.data_dir / "secret_key").read_bytes().strip() or None
        except (FileNotFoundError, NotADirectoryError):  # no data directory, or a file in its place
            return None

    @cached_property
    def timeline_key(self) -> bytes:
        """The key of the timeline hash chain: derived from the secret key under a fixed label, so the raw
        secret does not serve two purposes (links and the chain)."""
        return timeline_key_of(self.resolved_secret_key())

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class DirectoryUnusable(Exception):
    """A directory Warroom keeps its files in (the data directory, the SQLite file's) is not one and cannot
    be made. Its message is one line saying why, for the commands to end with."""


def make_directory(path: Path) -> None:
    """Make ``path`` (and its parents) unless it is a directory already; ``DirectoryUnusable`` says why not
    (a file in its place, a parent that cannot be written to or is not there to make it in)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DirectoryUnusable(
            f"the directory {path} cannot be made: a file is there; set WARROOM_DATA_DIR (or the database "
            "URL) to a directory"
        ) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and os.fspath(exc.filename) != os.fspath(path) else ""
        raise DirectoryUnusable(
            f"the directory {path} cannot be made: {exc.strerror or exc}{where}; set WARROOM_DATA_DIR (or "
            "the database URL) to a directory this user can write to"
        ) from None


# ``postgres://`` (Heroku, Render, Fly and others hand these out) and a bare ``postgresql://``, up to "://".
_POSTGRES_SCHEME = re.compile(r"(?i)^\s*postgres(?:ql)?://")


def database_url(value: str | None) -> str | None:
    """``value`` with a PostgreSQL URL that names no driver (``postgres://``, ``postgresql://``) given
    psycopg 3's, the driver Warroom ships: SQLAlchemy knows no ``postgres`` dialect ("Can't load plugin"),
    and before 2.1 reads a bare ``postgresql://`` as psycopg2's, which is not installed. The rest of the URL
    (user, password, host, query) is kept as it is."""
    if value is None:
        return None
    return _POSTGRES_SCHEME.sub("postgresql+psycopg://", value, count=1)


def sqlite_synchronous(value: str) -> str:
    """``value`` as SQLite's ``PRAGMA synchronous`` is to be given it (upper case); ValueError for any other
    word, which SQLite would read as NORMAL without a word."""
    level = value.strip().upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(f"must be one of {', '.join(SQLITE_SYNCHRONOUS_LEVELS)} (case does not matter)")
    return level


def public_url(value: str | None) -> str | None:
    """The base of the links in pages and messages (acknowledge links): an absolute http(s) URL with a host
    and no query or fragment (a path after it stays, for a server under a prefix); ValueError otherwise,
    since a link made from it would lead nowhere."""
    if value is None:
        return None
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018  (raises on a port that is not a number, or out of range)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL, e.g. https://warroom.example.com")
    if parts.query or parts.fragment:
        raise ValueError("must have no query (?) or fragment (#): links are made by adding paths to it")
    return value.strip()


TIMELINE_KEY_LABEL = b"warroom timeline chain v1"


def timeline_key_of(secret_key: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(secret_key, TIMELINE_KEY_LABEL, hashlib.sha256).digest()


def forwarded_allow_ips(value: str | None) -> str | None:
    """``value`` as uvicorn's ``ProxyHeadersMiddleware`` is to read it: ``*``, or addresses and networks
    (CIDR), comma-separated, spaces around them dropped; None when it names none. ValueError names an entry
    that is neither: uvicorn would keep it as a literal to compare with the client's host (meant for a unix
    socket's path, which ``warroom serve`` does not listen on), which no client's address ever equals, so
    every client behind the proxy would share the proxy's address, silently."""
    if value is None or not value.strip():
        return None
    entries = [entry.strip() for entry in value.split(",")]
    if entries == ["*"]:
        return "*"  # every address (uvicorn reads "*" so only on its own)
    for entry in entries:
        if entry == "*":
            raise ValueError("'*' (trust every address) stands alone, not in a list")
        if not entry:
            raise ValueError("an empty entry between commas; separate addresses with one comma")
        try:
            if "/" in entry:
                # strict, as uvicorn reads it: 10.0.0.1/8 (host bits set) would be a literal there.
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError as exc:
            # "10.0.0.1/8 has host bits set": say which network was meant.
            fix = (
                f" ({exc}; the network is {ipaddress.ip_network(entry, strict=False)})"
                if "host bits" in str(exc)
                else ""
            )
            raise ValueError(
                f"{entry!r} is not an IP address or a network (CIDR){fix}; separate them with commas: "
                "127.0.0.1,::1,10.0.0.0/8 (or * alone, every address)"
            ) from None
    return ",".join(entries)
