"""The ``warroom`` command: admin commands (local database) and client commands (HTTP)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.text import Text
from typer.core import TyperArgument, TyperGroup

from warroom import __version__
from warroom.alerts.schemas import RoutingPreview, RuleReplay
from warroom.auth.enums import Role
from warroom.cli.alerts import alerts_app, heartbeats, integration_app, report
from warroom.cli.changes import changes_app
from warroom.cli.helptext import DURATION_FORMS, WarroomGroup, environment_epilog
from warroom.cli.incidents import incident_app, log, responder_app
from warroom.cli.jobs import WORKER_EPILOG, jobs_app, worker
from warroom.cli.maintenance import maintenance_app
from warroom.cli.notify import notify_app
from warroom.cli.oncall import oncall_app
from warroom.cli.output import (
    USAGE,
    IdColumn,
    OutputGuard,
    RowIdArgument,
    WordColumn,
    api_errors,
    bar,
    console,
    emit,
    error_console,
    error_text,
    fail,
    print_json,
    table,
    usage_error,
    when,
)
from warroom.cli.parsing import OnceOnlyCommand
from warroom.client import ApiError, Client
from warroom.durations import format_duration
from warroom.errors import WarroomError
from warroom.fields import validation_message
from warroom.settings import Settings

# Only what the client commands need is imported up front: the database, the org file and the services load in
# the commands that use them, so that `warroom alerts list` does not wait for SQLAlchemy to load.
if TYPE_CHECKING:
    from warroom.auth.schemas import TokenRead
    from warroom.db import Database
    from warroom.dbbackup import BackupReport
    from warroom.orgconfig import OrgConfig


def not_utf8(text: str) -> str | None:
    """Where ``text`` (an argument or an environment variable, as Python read it) holds a byte that is not
    UTF-8: "byte 0xe9 at character 4"; None if it is all UTF-8. Python reads such a byte as a lone surrogate
    (U+DCE9), which no request can carry: httpx failed on it with a traceback, after nothing was checked. A
    locale that is not UTF-8 (Latin-1) reads every byte as a character, so only bytes that are not UTF-8
    under a UTF-8 or ASCII locale end up here; UTF-8 read by an ASCII locale is left alone (a path opens)."""
    if not any("\ud800" <= character <= "\udfff" for character in text):
        return None
    try:
        raw = os.fsencode(text)  # the bytes as given
    except UnicodeEncodeError:  # a surrogate no byte of the command line escapes
        raw = text.encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        character = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
        return f"byte 0x{raw[exc.start]:02x} at character {character}"
    return None


def _argument_name(command: Any, prog_name: str, arguments: list[str], index: int) -> str:
    """How the command line's ``arguments[index]`` is known: the option it is the value of (``--message``)
    or the argument it is (``TITLE``), read as click reads the command line but without acting on it; else
    the option before it, or its place."""
    given = arguments[index]
    if given.startswith("--") and "=" in given:
        return given.split("=", 1)[0]
    try:
        ctx = command.make_context(prog_name, list(arguments), resilient_parsing=True)
        contexts = [ctx]
        while isinstance(ctx.command, TyperGroup) and (rest := [*ctx._protected_args, *ctx.args]):
            name, sub, rest = ctx.command.resolve_command(ctx, rest)
            if sub is None:
                break
            ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=True)
            contexts.append(ctx)
        for ctx in contexts:
            for param in ctx.command.params:
                value = ctx.params.get(param.name)
                values = value if isinstance(value, list | tuple) else [value]
                if any(str(one) == given for one in values if one is not None):
                    if isinstance(param, TyperArgument):
                        return str(param.metavar or param.name).upper()
                    return str(max(param.opts, key=len))
    except Exception:  # only the name is at stake: a command line click cannot read is named below
        pass
    before = arguments[index - 1] if index > 0 else ""
    return before if before.startswith("-") else f"argument {index + 1}"


def command_line_problem(command: Any, prog_name: str, arguments: list[str]) -> str | None:
    """What makes the command line unusable before anything is done: an argument, or a WARROOM_* variable,
    that is not UTF-8 (``not_utf8``), said as ``config check`` says a file that is not."""
    for index, argument in enumerate(arguments):
        # In --option=VALUE, where in the value.
        value = argument.split("=", 1)[1] if argument.startswith("--") and "=" in argument else argument
        where = not_utf8(value)
        if where is not None:
            name = _argument_name(command, prog_name, arguments, index)
            return f"{name}: {where} is not UTF-8; set your terminal to UTF-8 (nothing was done)"
    for variable, value in sorted(os.environ.items()):
        where = not_utf8(value) if variable.startswith("WARROOM_") else None
        if where is not None and variable in _variables_read():
            variable_is = f"the environment variable {variable}: {where} is not UTF-8"
            return f"{variable_is}; set it in UTF-8 (nothing was done)"
    return None


def _variables_read() -> set[str]:
    """The WARROOM_* variables Warroom reads: the settings' and the client's. Another (a deploy script's own
    WARROOM_RELEASE) may hold any bytes; it must not stop ``--help``. Imported only when one is not UTF-8."""
    from warroom.settings import Settings

    return {f"WARROOM_{name.upper()}" for name in Settings.model_fields} | {
        "WARROOM_URL",
        "WARROOM_TOKEN",
        "WARROOM_TIMEOUT",
    }


class WarroomCommandLine(WarroomGroup):
    """The ``warroom`` command as a whole, around every command and its help: its output never fails on
    the terminal's encoding (``OutputGuard``); a command line that is not UTF-8 is refused (exit 2, a usage
    error) before any command runs (``command_line_problem``); and output that cannot be written (the disk
    full, standard output closed) is said in one line, exit 1. A broken pipe (``| head``) is quiet, exit 0,
    for every command and its help alike: the reader had what it wanted (small outputs fit in the pipe and
    never saw it, a long one or --help did, so the same command exited 0 or 1 by chance)."""

    # Typed loosely: Typer's click types are its private copy's.
    def main(self, args: Any = None, prog_name: Any = None, *rest: Any, **extra: Any) -> Any:
        if sys.stdout is None:
            # Closed (``>&-``): the output would go nowhere and the command exit 0, as if it had been seen.
            error_console.print(
                "[bold red]error:[/] standard output is closed: nothing was done; "
                "to discard the output, send it to /dev/null"
            )
            sys.exit(1)
        guard = OutputGuard()
        guard.install()
        try:
            try:
                arguments = sys.argv[1:] if args is None else list(args)
                problem = command_line_problem(self, prog_name or "warroom", arguments)
                if problem is not None:
                    error_console.print(f"[bold red]error:[/] {escape(problem)}")
                    sys.exit(USAGE)
                return super().main(args, prog_name, *rest, **extra)
            finally:
                guard.flush()
        except (OSError, SystemExit):
            failure = guard.failure
            if failure is None:
                raise
            guard.discard()
            if failure.errno == errno.EPIPE:
                sys.exit(0)
            error_console.print(
                f"[bold red]error:[/] cannot write the output: {escape(failure.strerror or str(failure))}"
            )
            sys.exit(1)
        finally:
            guard.restore()


app = typer.Typer(
    help="Warroom: incident response and recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # `alerts show -1` says there is no alert -1, not "No such option: -1"; help texts reflowed, once for all;
    # the output never fails on an encoding.
    cls=WarroomCommandLine,
)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
config_app = typer.Typer(help="The YAML org file.", no_args_is_help=True)
audit_app = typer.Typer(help="Tamper checks.", no_args_is_help=True)
severity_app = typer.Typer(help="The severity matrix (client).", no_args_is_help=True)
demo_app = typer.Typer(help="Example data.", no_args_is_help=True)

app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(incident_app, name="incident")
app.add_typer(responder_app, name="responder")
app.add_typer(severity_app, name="severity")
app.add_typer(oncall_app, name="oncall")
app.add_typer(demo_app, name="demo")
app.command("log", cls=OnceOnlyCommand)(log)
app.add_typer(jobs_app, name="jobs")
app.command("worker", cls=OnceOnlyCommand, epilog=WORKER_EPILOG)(worker)
app.add_typer(notify_app, name="notify")
app.add_typer(alerts_app, name="alerts")
app.add_typer(integration_app, name="integration")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(changes_app, name="changes")
app.command("report", cls=OnceOnlyCommand)(report)
app.command("heartbeats", cls=OnceOnlyCommand)(heartbeats)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML org file (WARROOM_CONFIG).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (WARROOM_DATABASE_URL).")
]


def _settings(config: Path | None = None, database_url: str | None = None, **extra: object) -> Settings:
    overrides: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    if config is not None:
        overrides["config"] = config
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # A bad WARROOM_* variable (or option): which one, and what it takes, not a traceback.
        fail(
            "; ".join(
                f"WARROOM_{'_'.join(str(part) for part in error['loc']).upper()}: {validation_message(error)}"
                + (f" (got {error['input']!r})" if isinstance(error.get("input"), str | int | float) else "")
                for error in exc.errors()
            )
        )


def _org(settings: Settings) -> OrgConfig:
    from warroom.orgconfig import ConfigError, load_org_config

    try:
        return load_org_config(settings.config)
    except ConfigError as exc:
        error_console.print(f"[bold red]{escape(str(exc.path))}[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            error_console.print(f"  - {escape(str(problem))}")
        raise typer.Exit(2) from None


def _database(
    settings: Settings, *, read_only: bool = False, create: bool = False, migrated: list[str] | None = None
) -> Database:
    """The local database, brought to this version's schema; with ``read_only`` (commands that say they
    change nothing) it must already exist at that schema: nothing is created or migrated. Only ``create``
    (``db upgrade``, ``demo seed``, the worker) makes a SQLite file that is not there: a token or key made in
    a new file in the wrong directory works nowhere, and the command looked as if it had worked."""
    from warroom import migrate
    from warroom.db import Database

    url = settings.resolved_database_url
    with database_errors(url):
        database = Database.from_settings(settings) if create else _existing(url, settings)
        if not read_only:
            said = migrate.upgrade(database.engine, timeline_key=lambda: settings.timeline_key)
            if said is not None and migrated is not None:
                migrated.append(said)  # db upgrade says it; other commands migrate quietly
        elif migrate.pending(database.engine):
            fail("the database is not at this version's schema: run warroom db upgrade first")
    return database


SUPPORTED_DATABASES = ("sqlite", "postgresql")


def shown_url(url: Any) -> str:
    """A database URL as printed: no password (``db.shown_url``)."""
    from warroom.db import shown_url

    return shown_url(url)


def shown_location(url: Any) -> str:
    """Where a database is, as printed: a SQLite file's path, else its URL with no password."""
    from warroom.db import shown_location

    return shown_location(url)


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Opening, checking or migrating the database at ``url`` (``serve`` builds its app inside it): a problem
    with it ends the command with one line saying what it is, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from warroom import migrate
    from warroom.db import unavailable_reason
    from warroom.dbfile import directory_problem
    from warroom.settings import DirectoryUnusable

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        fail(f"the database URL {shown_url(url)!r} is not one: {exc}")
    # Any other dialect SQLAlchemy knows (mysql://) would fail on its driver, or later on Warroom's SQL.
    if backend not in SUPPORTED_DATABASES:  # postgres:// is read as postgresql+psycopg:// (settings)
        fail(
            f"the database URL {shown_url(url)!r} is for {backend}: only SQLite (sqlite:///path) and "
            "PostgreSQL (postgresql+psycopg://user@host/name) are supported"
        )
    try:
        yield
    except ArgumentError as exc:
        fail(f"the database URL {shown_url(url)!r} is not one: {exc}")
    except (migrate.NewerSchema, migrate.TablesMissing, DirectoryUnusable) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        reason = unavailable_reason(exc)
        if backend == "sqlite":
            # SQLite's "unable to open database file" also when the file opens but its directory cannot
            # take the -wal and -shm files: say which.
            reason = directory_problem(make_url(url).database or "") or reason
        fail(f"cannot use the database at {shown_location(url)}: {reason}")


def _could_be_made(directory: Path) -> None:
    """``DirectoryUnusable`` (``make_directory``'s line) unless ``directory`` is one or could be made; it
    makes nothing: a command that only reads the database must not leave a directory behind (a typo in
    WARROOM_DATA_DIR). The first missing directory is made and removed at once, as only trying says whether
    it can be (root may write where ``os.access`` says so, and still be refused, as under /proc)."""
    from warroom.settings import make_directory

    if directory.is_dir():
        return
    top = directory
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    if top.parent.is_dir() and not top.exists():
        try:
            top.mkdir()
        except OSError:
            pass  # make_directory below says why, in its words, and makes nothing either
        else:
            top.rmdir()
            return
    make_directory(directory)  # fails: a file in its place or above it, or a directory that cannot be made


def _existing(url: str, settings: Settings) -> Database:
    from sqlalchemy.engine import make_url

    from warroom.db import Database, is_sqlite

    file = make_url(url).database if is_sqlite(url) else None
    if file and file != ":memory:" and not Path(file).exists():
        # Sending the user to ``db upgrade`` is no help when it cannot make the file's directory either (a
        # WARROOM_DATA_DIR that names a file): say so now, in its words.
        _could_be_made(Path(file).parent)
        fail(
            f"no database at {file}: give --database-url (or WARROOM_DATABASE_URL, or WARROOM_DATA_DIR), or "
            "make one with warroom db upgrade"
        )
    return Database.from_settings(settings)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command(
    # The variables' names are said below the options: in an option's help, at 80 columns, Rich cut them.
    epilog=environment_epilog(
        {
            "--host": "WARROOM_HOST",
            "--port": "WARROOM_PORT",
            "--config": "WARROOM_CONFIG",
            "--database-url": "WARROOM_DATABASE_URL",
            "--mail-port": "WARROOM_MAIL_INTAKE_PORT",
            "--mail-tls-cert": "WARROOM_MAIL_INTAKE_TLS_CERT",
            "--mail-tls-key": "WARROOM_MAIL_INTAKE_TLS_KEY",
            "--forwarded-allow-ips": "WARROOM_FORWARDED_ALLOW_IPS",
        },
        "With a certificate, mail that does not start TLS is refused unless "
        "WARROOM_MAIL_INTAKE_REQUIRE_TLS=false.",
    )
)
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.", min=1, max=65535)] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run background jobs here.")] = False,
    mail_port: Annotated[
        int | None,
        typer.Option(
            "--mail-port",
            min=1,
            max=65535,
            help="Also take alerts by email: listen for SMTP on this port.",
        ),
    ] = None,
    mail_tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--mail-tls-cert",
            help="PEM certificate chain: the mail intake offers STARTTLS, and requires it (unless told not "
            "to: below).",
        ),
    ] = None,
    mail_tls_key: Annotated[
        Path | None,
        typer.Option(
            "--mail-tls-key",
            help="PEM private key of that certificate, if it is not in the certificate file.",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="The reverse proxies (comma-separated IP addresses or CIDR networks, or * alone) whose "
            "X-Forwarded-For is believed for the client's address (default: none).",
        ),
    ] = None,
) -> None:
    """Run the API server, with its API browser at /docs (and the background worker unless --no-worker)."""
    import uvicorn

    from warroom.alerts import mail
    from warroom.app import create_app
    from warroom.context import AppContext
    from warroom.db import Database

    settings = _settings(
        config,
        database_url,
        host=host,
        port=port,
        mail_intake_port=mail_port,
        mail_intake_tls_cert=mail_tls_cert,
        mail_intake_tls_key=mail_tls_key,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    if no_worker:
        settings.run_worker = False
    org = _org(settings)  # refuse to start on a bad org file
    _warn_if_nothing_routed(settings.config, org)
    _warn_of_broken_handlers()
    try:
        mail_tls = mail.tls_context(settings)  # and on a certificate the mail intake cannot use
    except mail.MailTLSError as exc:
        fail(str(exc))
    # Warroom's own log lines (the migration it runs at start, an org file reloaded on kill -HUP, retention's
    # counts) beside uvicorn's.
    configure_logging(SERVE_LOG_FORMAT)
    # The port first: a port another process holds is refused before the database is migrated or a worker
    # takes a job (uvicorn binds only after the app's startup, which starts the worker).
    if (settings.mail_intake_host, settings.mail_intake_port) == (settings.host, settings.port):
        usage_error(f"--mail-port must differ from --port (both are {settings.port} on {settings.host})")
    listener = listening_socket(settings.host, settings.port, "--port")
    mail_listener = None
    if settings.mail_intake_port is not None:
        mail_listener = listening_socket(settings.mail_intake_host, settings.mail_intake_port, "--mail-port")
    try:
        with database_errors(settings.resolved_database_url):  # create_app migrates it
            context = AppContext(
                settings=settings,
                db=Database.from_settings(settings),
                org=org,
            )
            application = create_app(settings, context, mail_listener)
    except BaseException:
        # Not left bound until the process ends: a caller that goes on (a test, an embedding) gets the
        # ports back.
        listener.close()
        if mail_listener is not None:
            mail_listener.close()
        raise
    listening = listen_address(settings)
    public = settings.public_url
    # The address it listens on; the one people reach it at (pages' links) beside it when that differs.
    also = f"public URL: {public}; " if public and public.rstrip("/") != listening else ""
    console.print(
        f"Warroom {__version__} on [bold]{escape(listening)}[/] "
        + escape(f"({also}org: {org.organization}; database: {shown_location(context.db.engine.url)})")
    )
    if settings.mail_intake_port is not None:
        console.print(
            f"Alerts by email: SMTP on [bold]{settings.mail_intake_host}:{settings.mail_intake_port}[/] "
            + ("(plain, no TLS)" if mail_tls is None else "(STARTTLS)")
            + ", to <key of an email integration>@…"
        )
    server = uvicorn.Server(uvicorn.Config(application, **uvicorn_options(settings)))
    with suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:  # the app's startup failed, and said why; exit as uvicorn.run would
        raise typer.Exit(3)


def listening_socket(host: str, port: int, what: str) -> socket.socket:
    """A socket listening on ``host:port``; or the command ends with one line saying why (``what``: the
    option that names the port, for the hint)."""
    shown = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on {shown}: {exc.strerror or exc} (check the host)")
    family, kind, protocol, _, address = addresses[0]
    listener = socket.socket(family, kind, protocol)
    # As uvicorn sets it: a restart may bind while the last process's connections are in TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        hint = (
            f" (is another Warroom running? choose another {what})" if exc.errno == errno.EADDRINUSE else ""
        )
        fail(f"cannot listen on {shown}: {exc.strerror or exc}{hint}")
    return listener


def listen_address(settings: Settings) -> str:
    """The address ``serve`` listens on (``--host``, ``--port``), as a URL: not the public URL, which may
    name a proxy or another server."""
    host = settings.host
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


# Libraries that log secrets at INFO, kept to warnings in the long-running commands: httpx logs each request's
# URL (a Slack or webhook URL is a credential, and so is a person's own contact URL), httpcore its
# connections, aiosmtpd (``mail.log``) each SMTP command line, whose recipient is an email integration's key.
# uvicorn's access log (URLs with ``?key=``) is off (``uvicorn_options``).
QUIET_LOGGERS = ("httpx", "httpcore", "mail.log")


# The long-running commands' log lines: serve's beside uvicorn's ("INFO:     Started server process"), the
# worker's with the time.
SERVE_LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"
WORKER_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(line_format: str) -> None:
    """Log Warroom's own lines at INFO; the libraries of ``QUIET_LOGGERS`` and Alembic only from WARNING.
    Each record is one line, whatever a sender or peer put in it (``loglines``)."""
    from warroom import loglines

    logging.basicConfig(level=logging.INFO, format=line_format)
    for handler in logging.getLogger().handlers:
        loglines.install(handler)
    for name in (*QUIET_LOGGERS, "alembic"):  # Alembic: a line per migration step; ours sums them up
        logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn. Forwarding headers are believed only from the proxies
    WARROOM_FORWARDED_ALLOW_IPS names: uvicorn's own default trusts any X-Forwarded-For sent from
    127.0.0.1, which a proxy on the same host passes on from the client unless told to overwrite it, so
    any client could pick its address (and a fresh bucket of the report form's rate limit)."""
    from uvicorn.config import LOGGING_CONFIG

    from warroom import loglines, server  # imports uvicorn: not for the CLI's other commands

    trusted = (settings.forwarded_allow_ips or "").strip()
    return {
        "host": settings.host,
        "port": settings.port,
        # uvicorn's httptools protocol, which also closes a connection whose request does not arrive in time.
        "http": server.http_protocol(settings),
        "log_level": "info",
        # uvicorn's own lines (an exception in the app, with its traceback) one line each too.
        "log_config": loglines.uvicorn_log_config(LOGGING_CONFIG),
        "access_log": False,
        "proxy_headers": bool(trusted),
        # Never None: uvicorn would read FORWARDED_ALLOW_IPS from the environment instead.
        "forwarded_allow_ips": trusted or "",
    }


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply every pending migration."""
    settings = _settings(database_url=database_url)
    migrated: list[str] = []
    database = _database(settings, create=True, migrated=migrated)
    where = shown_location(database.engine.url)
    if not migrated:
        from warroom import migrate

        # At this version's revision with tables dropped: nothing to run, and not "up to date" either.
        with database_errors(settings.resolved_database_url):
            migrate.check_tables(database.engine)
    console.print(f"{where}: {migrated[0]}" if migrated else f"database at {where} is up to date")
    database.dispose()


@db_app.command("vacuum")
def db_vacuum(database_url: DatabaseOption = None) -> None:
    """Rewrite the database compactly. SQLite: VACUUM, which returns all free space to the file system and
    turns on incremental auto-vacuum in a file made before Warroom set it, so that retention shrinks it from
    then on (it holds the write lock while it runs: intake waits). PostgreSQL: VACUUM (ANALYZE)."""
    database = _database(_settings(database_url=database_url))
    before = database.size_bytes()
    with console.status("vacuuming…"):
        database.vacuum()
    after = database.size_bytes()
    database.dispose()
    console.print(
        f"database at {shown_location(database.engine.url)}: {_megabytes(before)} -> {_megabytes(after)}"
    )


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (its directory must exist).")],
    database_url: DatabaseOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy the database to PATH while Warroom runs: consistent, written whole or not at all. SQLite: a
    standalone database file (SQLite's online backup; intake goes on). PostgreSQL: a pg_dump custom archive,
    for pg_restore. Keep the secret key (data_dir/secret_key or WARROOM_SECRET_KEY) with it. Refusals exit 2
    and write nothing."""
    from dataclasses import asdict

    from warroom.db import is_sqlite

    settings = _settings(database_url=database_url)
    url = settings.resolved_database_url
    # As long as a write would wait for the database's lock.
    wait = settings.sqlite_busy_timeout if is_sqlite(url) else settings.postgres_lock_timeout
    with _as_refusal(), database_errors(url):
        database = _existing(url, settings)
    try:
        report = _back_up(database, path, force=force, lock_timeout=wait)
    finally:
        database.dispose()  # also after a refusal: its connection's -wal and -shm go with it
    key = "WARROOM_SECRET_KEY" if settings.secret_key else str((settings.data_dir / "secret_key").resolve())
    reminder = (
        f"keep the secret key ({key}) with the backup: warroom audit verify and signed links need the same "
        "one"
    )
    if as_json:
        print_json({**asdict(report), "path": str(report.path), "secret_key": key})
        return
    # Unwrapped: the paths are for pasting, whole.
    for line in (
        f"backed up {report.database} ({report.format}, revision {report.revision})",
        f"  to {report.path}: {_megabytes(report.size_bytes)}",
        f"  {report.incidents:,} incidents, {report.alerts:,} alerts, in {report.seconds:.1f} s",
        reminder,
    ):
        console.print(escape(line), soft_wrap=True)


def _back_up(database: Database, path: Path, *, force: bool, lock_timeout: float) -> BackupReport:
    """``dbbackup``'s checks, then the backup; their refusals and failures as the CLI says them."""
    from warroom import dbbackup

    # Refusals, the database's included (unreachable, not a Warroom one), exit 2 and write nothing.
    with _as_refusal(), database_errors(database.url):
        try:
            plan = dbbackup.prepare(database, path, force=force, lock_timeout=lock_timeout)
        except dbbackup.BackupRefused as exc:
            usage_error(str(exc))
    try:
        with database_errors(database.url), _terminate_as_interrupt(), error_console.status("backing up…"):
            return dbbackup.run(plan)
    except dbbackup.BackupRefused as exc:
        usage_error(str(exc))
    except dbbackup.BackupUnsound as exc:
        fail(str(exc))
    except dbbackup.BackupFailed as exc:
        fail(f"{exc}; nothing was written to {plan.target}")
    except KeyboardInterrupt:
        fail(f"interrupted; nothing was written to {plan.target}", code=130)


@contextmanager
def _as_refusal() -> Iterator[None]:
    """Failures before anything is written are refusals: exit 2, not 1 (``database_errors`` says them)."""
    try:
        yield
    except typer.Exit as exc:
        raise typer.Exit(USAGE if exc.exit_code == 1 else exc.exit_code) from None


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, a timeout) and SIGHUP (a dropped ssh session) end the command as Ctrl-C
    does: its temporary file removed. A SIGHUP ignored already (``nohup``) stays ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {
        stop: signal.signal(stop, interrupt)
        for stop in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(stop) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


@db_app.command("copy")
def db_copy(
    to: Annotated[
        str,
        typer.Option("--to", help="SQLAlchemy URL of the empty database to copy into.", show_default=False),
    ],
    database_url: DatabaseOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy every row of this database into an empty one, on SQLite or PostgreSQL (to move from SQLite to
    PostgreSQL): the target is migrated, filled in one transaction (all or nothing), its number sequences
    moved past the copied rows, its row counts compared and its timelines checked as audit verify does. That
    check, and the target's server, need this server's secret key (WARROOM_SECRET_KEY, else
    data_dir/secret_key). Stop serve and worker first: rows written after the copy starts are not copied."""
    from warroom import dbcopy, migrate
    from warroom.db import Database
    from warroom.settings import database_url as normalised_database_url

    # postgres:// and postgresql:// read as they do in WARROOM_DATABASE_URL (psycopg 3).
    to = normalised_database_url(to) or to
    settings = _settings(database_url=database_url)
    source_url = settings.resolved_database_url
    # Everything before the target is migrated is a refusal: exit 2, nothing written.
    with _as_refusal(), database_errors(source_url):
        source = _existing(source_url, settings)
        try:
            dbcopy.check_source(source.engine)
        except dbcopy.CopyRefused as exc:
            usage_error(str(exc))
    with _as_refusal(), database_errors(to):
        try:
            dbcopy.check_target_url(to)
        except dbcopy.CopyRefused as exc:
            source.dispose()
            usage_error(str(exc))
        target = Database(to)
        try:
            dbcopy.check_target(source.engine, target.engine)
        except dbcopy.CopyRefused as exc:
            source.dispose()  # a SQLite source's -wal and -shm go with its connection
            target.dispose()
            usage_error(str(exc))
    with database_errors(to):
        migrate.upgrade(target.engine)
    error_console.print(
        "[bold yellow]warning:[/] the copy reads the source as it is now: rows written after that are not "
        "copied; stop warroom serve and warroom worker before moving"
    )
    try:
        with _copy_progress() as progress:
            copied = dbcopy.copy_rows(source.engine, target.engine, progress=progress)
    except (dbcopy.CopyFailed, dbcopy.CopyRefused) as exc:
        fail(str(exc))
    finally:
        source.dispose()
    try:
        secret = settings.existing_secret_key()
    except OSError:
        secret = None
    report = dbcopy.audit_target(target.engine, secret) if secret is not None else None
    target.dispose()
    rows = sum(table.rows for table in copied)
    where = shown_location(to)
    audit_said = (
        "not run: no secret key (set WARROOM_SECRET_KEY or WARROOM_DATA_DIR as the server's, then run "
        f"warroom audit verify --database-url {shown_url(to)})"
        if report is None
        # As audit verify's hint: every incident failing is a key other than the one the source was sealed
        # with, not a bad copy.
        else f"every incident fails: the secret key probably differs from the source's (set "
        "WARROOM_SECRET_KEY or WARROOM_DATA_DIR as the source server's and run warroom audit verify "
        f"--database-url {shown_url(to)})"
        if report.wrong_key
        else f"{len(report.problems)} problem(s): run warroom audit verify on the source and the target"
        if report.problems
        else f"ok, {report.checked} timeline entries verified"
    )
    # Only a key the copy's timelines verified with is the one its server needs.
    key_reminder = "" if report is None or report.wrong_key else "; its server needs this secret key"
    if as_json:
        print_json(
            {
                "source": shown_location(source_url),
                "target": where,
                "tables": {table.name: table.rows for table in copied},
                "rows": rows,
                "audit": None
                if report is None
                else {
                    "checked": report.checked,
                    "problems": [
                        {"incident": p.incident, "seq": p.seq, "reason": p.reason} for p in report.problems
                    ],
                    "warnings": report.warnings,
                    "wrong_key": report.wrong_key,
                },
            }
        )
    else:
        table("Rows copied", [WordColumn("table"), "rows"], [(t.name, f"{t.rows:,}") for t in copied])
        for warning in report.warnings if report is not None else []:
            error_console.print(f"[bold yellow]WARNING[/] {escape(warning)}")
        for problem in report.problems if report is not None else []:
            error_console.print(f"[bold red]BROKEN[/] {escape(f'{problem.incident}: {problem.reason}')}")
        console.print(
            escape(
                f"copied {rows:,} rows in {len(copied)} tables from {shown_location(source_url)} to {where}; "
                f"audit verify on the target: {audit_said}{key_reminder}"
            ),
            soft_wrap=True,  # one line, to grep or log, however long the paths
        )
    if report is not None and report.problems:
        raise typer.Exit(1)


@contextmanager
def _copy_progress() -> Iterator[Callable[[str, int, int], None] | None]:
    """One progress bar per table on stderr when it is a terminal; piped or logged, nothing extra."""
    if not error_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    with Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), console=error_console
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def advance(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done)

        yield advance


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token.")],
    role: Annotated[Role, typer.Option(help="viewer, responder or admin.")],
    database_url: DatabaseOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; the token is printed alone on the last line (with --json: in "token", once)."""
    from warroom.auth import service as auth_service

    try:
        name = auth_service.check_name(name)
    except WarroomError as exc:
        usage_error(f"--{exc.message}")
    database = _database(_settings(database_url=database_url))
    try:
        with database.write() as session:
            created = auth_service.create_token(session, name=name, role=role)
    except WarroomError as exc:
        fail(exc.message)
    finally:
        database.dispose()
    if as_json:
        print_json(created)
        return
    error_console.print(
        escape(
            f"Created {created.role.value} token {created.name!r} (id {created.id}). It is shown only once:"
        )
    )
    typer.echo(created.token)


@token_app.command("list")
def token_list(database_url: DatabaseOption = None, as_json: JsonFlag = False) -> None:
    """List tokens (never their secrets)."""
    from warroom.auth import service as auth_service

    database = _database(_settings(database_url=database_url), read_only=True)
    with database.read() as session:
        tokens = auth_service.list_tokens(session)
    emit(as_json, tokens, lambda: _token_table(tokens))


def _token_table(tokens: list[TokenRead]) -> None:
    table(
        "API tokens",
        [
            IdColumn("id"),
            WordColumn("name"),
            WordColumn("role"),
            WordColumn("prefix", drop=1),
            WordColumn("created", drop=2),
            "revoked",
        ],
        [
            (
                t.id,
                t.name,
                t.role.value,
                t.prefix + "…",
                t.created_at,
                t.revoked_at or "",
            )
            for t in tokens
        ],
    )


@token_app.command("revoke")
def token_revoke(
    token_id: RowIdArgument, database_url: DatabaseOption = None, as_json: JsonFlag = False
) -> None:
    """Revoke a token by id; one revoked already is left as it is, and the command says so."""
    from warroom.auth import service as auth_service
    from warroom.errors import NotFound

    database = _database(_settings(database_url=database_url))
    try:
        with database.write() as session:
            token = auth_service.revoke_token(session, token_id=token_id)
    except NotFound as exc:
        fail(exc.message)
    if token.unchanged:
        said = f"token {token.id} ({token.name}) was already revoked (at {when(token.revoked_at)})"
    else:
        said = f"revoked token {token.id} ({token.name})"
    emit(as_json, token, lambda: console.print(escape(said)))


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="The YAML org file.")]) -> None:
    """Validate an org file; print every problem with its location and exit non-zero on any."""
    from warroom import reload
    from warroom.alerts.config import file_warnings
    from warroom.clock import clock
    from warroom.notify.config import unmet_secrets

    settings = _settings(config=file)
    org = _org(settings)
    console.print(f"[green]ok[/] {escape(str(file))}: {escape(reload.summary(org))}")
    _warn_if_nothing_routed(file, org)
    _warn_of_broken_handlers()
    for warning in unmet_secrets(org, webhook_secret=settings.webhook_secret):
        error_console.print(f"[yellow]warning[/] {escape(warning)}")
    for warning in file_warnings(org, clock.now()):
        error_console.print(f"[yellow]warning[/] {escape(warning)}")


def _warn_of_broken_handlers() -> None:
    """A ``warroom.handlers`` entry point that fails to import would otherwise show only when its first alert
    arrives (check, serve, worker)."""
    from warroom.alerts.handlers import entry_point_failures

    for problem in entry_point_failures():
        error_console.print(f"[bold yellow]warning[/] {escape(problem)}")


def _warn_if_nothing_routed(file: Path | None, org: OrgConfig) -> None:
    """A file that routes and pages nothing passes (check, serve, worker), but is most likely a mistake: say
    so, loudly. No file at all runs on the defaults, as meant."""
    from warroom import reload

    if file is not None and not reload.pages_and_routes(org):
        error_console.print(f"[bold yellow]warning[/] {escape(str(file))}: {escape(reload.NOTHING_ROUTED)}")


@config_app.command("status")
def config_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Which org file the running server uses and when it read it (WARROOM_URL, WARROOM_TOKEN)."""
    with api_errors(), Client() as client:
        running = client.config_status()
    if as_json:
        print_json(running)
        return
    console.print(
        f"{escape(running.file or '(no org file: defaults)')}, read {when(running.loaded_at)}: "
        f"{escape(running.summary)}"
    )


@config_app.command("reload")
def config_reload(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Take a file that has no services, escalation policies, automation rules, webhook formats "
            "or heartbeats where the running one has some (refused otherwise).",
        ),
    ] = False,
) -> None:
    """Have the running server read its org file again (admin token; WARROOM_URL, WARROOM_TOKEN), as kill -HUP
    does. A file with problems is refused, every problem printed, and the server keeps the one it runs; so is
    a file that empties a section the running one has (services, escalation policies, automation rules,
    webhook formats, heartbeats: a truncated file), unless --force. What the new file
    changes that is worth a look (a section emptied, incidents escalating on a policy it drops) is printed
    as warnings."""
    try:
        with Client() as client:
            loaded = client.reload_config(force=force)
    except ApiError as exc:
        # The org file's problems, each at a location (line) in the file.
        details = exc.details if isinstance(exc.details, list) else []
        problems = [p for p in details if isinstance(p, dict) and "location" in p]
        if exc.status != 422 or not problems:
            fail(error_text(exc))
        error_console.print(f"[bold red]not reloaded[/]: {escape(exc.message)}")
        for problem in problems:
            where = f"{problem.get('location')}" + (
                f" (line {problem['line']})" if problem.get("line") else ""
            )
            error_console.print(f"  - {escape(where)}: {escape(str(problem.get('message')))}")
        raise typer.Exit(2) from None
    if as_json:
        print_json(loaded)
        return
    console.print(
        f"[green]reloaded[/] {escape(loaded.file or '(no org file: defaults)')}: {escape(loaded.summary)}"
    )
    for warning in loaded.warnings:
        error_console.print(f"[bold yellow]warning[/] {escape(warning)}")


@config_app.command("backtest")
def config_backtest(
    file: Annotated[Path, typer.Argument(help="The org file to try (its automation section).")],
    since: Annotated[
        str, typer.Option("--since", help=f"Replay the alerts of this period: {DURATION_FORMS}.")
    ] = "7d",
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replay the alerts stored over a period (--since, default 7d) through FILE's rules, beside the org file
    in use (--config, WARROOM_CONFIG): the incidents they would have opened and the pages, at night too.
    Reads the database (--database-url, WARROOM_DATABASE_URL); changes nothing."""
    from pydantic import TypeAdapter

    from warroom.alerts import backtest
    from warroom.clock import clock
    from warroom.durations import Duration

    try:
        # Read as every duration option is (PT2H too), not with parse_duration alone, which leaves ISO 8601
        # to pydantic.
        period = TypeAdapter(Duration).validate_python(since)
    except ValidationError as exc:
        usage_error(f"--since: {validation_message(exc.errors()[0])}")
    if not isinstance(period, timedelta) or not BACKTEST_MIN <= period <= BACKTEST_MAX:
        usage_error(
            f"--since: give a period from {format_duration(BACKTEST_MIN)} to {format_duration(BACKTEST_MAX)}"
        )
    settings = _settings(config=config, database_url=database_url)
    candidate = _org(_settings(config=file))
    if settings.config is None:
        # Beside an empty org file every incident would look new: a comparison with nothing.
        usage_error("no org file in use to compare with: give --config FILE (or set WARROOM_CONFIG)")
    current = _org(settings)
    until = clock.now()
    with _database(settings, read_only=True).read() as session:
        now_replay = backtest.replay(session, current, since=until - period, until=until)
        file_replay = backtest.replay(session, candidate, since=until - period, until=until)
    if as_json:
        print_json(
            {"current": now_replay.model_dump(mode="json"), "file": file_replay.model_dump(mode="json")}
        )
        return
    console.print(
        f"{file_replay.alerts:,} alerts first fired from {when(file_replay.since)} to "
        f"{when(file_replay.until)}, replayed through {escape(str(file))}:"
    )
    # Per rule of FILE; beside each count, how it moved from the rule of the same name in use now.
    before = {rule.rule: rule for rule in now_replay.rules}

    def moved(rule: RuleReplay, field: str) -> Text | str:
        value: int = getattr(rule, field)
        earlier = before.get(rule.rule)
        if not value and (earlier is None or not getattr(earlier, field)):
            return ""
        return _change(value, getattr(earlier, field) if earlier is not None else None)

    rows = [
        (
            rule.rule,
            moved(rule, "alerts"),
            moved(rule, "incidents"),
            moved(rule, "pages"),
            moved(rule, "pages_outside_hours"),
        )
        for rule in file_replay.rules
    ]
    # Rules that took no alert in either file are counted, not listed: in a file of 300 rules they buried the
    # few that did.
    shown = [row for row in rows if any(row[1:])]
    idle = len(rows) - len(shown)
    table(
        None,
        ["rule", "alerts", "incidents", "pages", "outside hours"],
        shown
        + [(Text("(no rule)", style="dim"), _change(file_replay.unrouted, now_replay.unrouted), "", "", "")]
        + ([(Text(f"({idle} other rules took no alert)", style="dim"), "", "", "", "")] if idle else []),
    )
    in_use = escape(str(settings.config))
    table(
        None,
        ["", f"now ({in_use})", f"with {escape(file.name)}"],
        [
            (
                what,
                _change(getattr(now_replay, field)),
                _change(getattr(file_replay, field), getattr(now_replay, field)),
            )
            for what, field in BACKTEST_TOTALS
        ],
    )
    days = sorted({*now_replay.pages_by_day, *file_replay.pages_by_day})
    if days:
        most = max([*now_replay.pages_by_day.values(), *file_replay.pages_by_day.values()])
        table(
            "Pages by day",
            ["day", "now", "", f"with {escape(file.name)}", ""],
            [
                (
                    day,
                    now_replay.pages_by_day.get(day, 0),
                    bar(now_replay.pages_by_day.get(day, 0), most, "blue"),
                    file_replay.pages_by_day.get(day, 0),
                    bar(file_replay.pages_by_day.get(day, 0), most, "magenta"),
                )
                for day in days
            ],
        )
    console.print(
        "[dim]A model of the rules alone: maintenance windows, inhibition, joining by service dependencies "
        "and incidents closed by people are left out.[/]"
    )


BACKTEST_MIN = timedelta(hours=1)
BACKTEST_MAX = timedelta(days=366)
BACKTEST_TOTALS = (
    ("incidents", "incidents"),
    ("pages", "pages"),
    ("pages outside business hours", "pages_outside_hours"),
    ("not opened: resolved during a delay", "held_back"),
    ("held by the storm guard", "storm_guarded"),
    ("unrouted alerts", "unrouted"),
)


def _change(value: int, before: int | None = None) -> Text:
    """A count, and beside it how it moved from ``before`` (fewer pages is good news, so it is green)."""
    shown = Text(f"{value:,}")
    if before is not None and value != before:
        shown.append(f" ({value - before:+,})", style="green" if value < before else "red")
    return shown


@config_app.command("test-alert")
def config_test_alert(
    payload: Annotated[
        str,
        typer.Argument(
            help="A JSON file with one delivery (as a source would POST it), a saved mail message (.eml, "
            "as an email integration would receive it), a tool's own JSON (with --format), or - for stdin."
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="alertmanager, grafana, pagerduty, opsgenie (the body of POST /v2/alerts), generic, email, "
            "webhook, customer-report or internal-discovery (default: told by the payload's fields; --format "
            "implies webhook). Heartbeat pings hold no alert and are not read.",
        ),
    ] = "auto",
    webhook_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Read the payload with this webhook format of the org file (automation.webhook_formats), "
            "as POST /api/v1/alerts/webhook/<format> would.",
        ),
    ] = None,
    config: ConfigOption = None,
    server: Annotated[
        bool,
        typer.Option(
            "--server",
            help="Ask the running server (WARROOM_URL, WARROOM_TOKEN): its org file, and what is open now.",
        ),
    ] = False,
    integration: Annotated[
        int | None,
        typer.Option(
            "--integration",
            min=1,
            help="With --server: the integration (id, see 'integration list') that would send it, so the "
            "open alert is looked up among its alerts only, as intake does.",
        ),
    ] = None,
    matching: Annotated[
        bool,
        typer.Option(
            "--matching",
            help="Show only the rules that match, plus the summary of what would happen (with --json too: "
            "only they are in 'rules').",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Which rules an alert would match (and why the others do not), and the incident it would open: a dry run
    against the org file, with nothing stored. With --server, also whether it would only update an open alert,
    join its group's open incident, or be held by a maintenance window running now."""
    from warroom.alerts import automation, reports

    if integration is not None and not server:
        usage_error("--integration needs --server: only the server knows the integration's open alerts")
    try:
        reports.check_source(source)  # before --server too: its answer would only list the sources
    except WarroomError as exc:
        usage_error(exc.message)
    try:
        # Bytes, not text: a mail message declares its own charsets.
        body = sys.stdin.buffer.read() if payload == "-" else Path(payload).read_bytes()
    except OSError as exc:
        usage_error(f"cannot read {payload}: {exc.strerror}")
    if server:
        with api_errors(), Client() as client:
            previews = client.preview_alerts(body, source, integration, webhook_format)
    else:
        settings = _settings(config=config)
        if settings.config is None:
            # An empty org file has no rules: every alert would look unrouted, which says nothing.
            usage_error(
                "no org file to test against: give --config FILE (or set WARROOM_CONFIG), "
                "or ask the server with --server"
            )
        org = _org(settings)
        try:
            kind, events = reports.delivery_events(org, body, source, webhook_format)
        except WarroomError as exc:
            fail(exc.message)
        previews = [automation.preview(org, kind, event) for event in events]
    if as_json:
        print_json(
            [_matching_only(preview) if matching else preview.model_dump(mode="json") for preview in previews]
        )
        return
    if not previews:
        console.print("No alerts: the webhook format's skip leaves out every item; nothing would be stored.")
    for preview in previews:
        _print_preview(preview, matching=matching)


def _matching_only(preview: RoutingPreview) -> dict[str, Any]:
    """The preview as JSON with only the rules that match (``--matching``), and how many were checked."""
    shown = preview.model_dump(mode="json")
    shown["rules"] = [verdict for verdict in shown["rules"] if verdict["matched"]]
    shown["rules_checked"] = len(preview.rules)
    return shown


def _print_preview(preview: RoutingPreview, *, matching: bool = False) -> None:
    from warroom.alerts import automation

    console.print(
        f"[bold]{escape(preview.summary)}[/] "
        + escape(
            f"({preview.source}, {preview.severity}, type {preview.type}, service {preview.service or '-'})"
        )
    )
    if preview.labels:
        labels = ", ".join(f"{name}={value}" for name, value in preview.labels.items())
        console.print(escape(f"labels: {labels}"), style="dim")
    if preview.action != "trigger":
        done = "resolves" if preview.action == "resolve" else "acknowledges"
        target = preview.open_alert or "the open alert with its dedup key, if there is one"
        console.print(escape(f"-> {done} {target} (at its source); the rules do not run"))
        console.print()
        return
    # --matching: in an org file of 150 rules the one that matches is the one to read; the rest are counted.
    verdicts = [verdict for verdict in preview.rules if verdict.matched] if matching else preview.rules
    others = len(preview.rules) - len(verdicts)
    unrouted_said = False
    if verdicts or not matching:
        rows: list[tuple[str | Text, ...]] = [
            (
                verdict.rule,
                Text("applies", style="green")
                if verdict.applied
                else Text("matches (mode first: an earlier rule applies)", style="yellow")
                if verdict.matched
                else Text("no", style="dim"),
                verdict.why_not or "",
            )
            for verdict in verdicts
        ]
        if matching:  # no "why not" to show: each rule shown matches
            rows = [row[:2] for row in rows]
            rest = "1 other rule does not match" if others == 1 else f"{others} other rules do not match"
            rows += [(Text(f"({rest})", style="dim"), "")] if others else []
        table(None, ["rule", ""] if matching else ["rule", "", "why not"], rows)
    else:
        checked = f"{others} rule{'' if others == 1 else 's'} checked" if others else "there are no rules"
        # One line that says both; when a repeat or a hold decides what happens, the lines below say it.
        plain = (
            preview.unrouted
            and preview.open_alert is None
            and preview.maintenance_window is None
            and preview.inhibited_by is None
        )
        if plain:
            console.print(
                f"-> no rule matches ({checked}): [magenta]unrouted[/]: stored, and listed by alerts list "
                "--unrouted"
            )
            unrouted_said = True
        else:
            console.print(f"no rule matches ({checked}):")
    incident = preview.incident
    if preview.open_alert is not None and preview.open_alert_unchanged:
        console.print(
            escape(
                f"-> the same delivery as the last one applied to the open alert {preview.open_alert}: it "
                "marks the alert seen (a minute or more later) without counting an occurrence, and changes "
                "nothing else (outcome: unchanged)"
            )
        )
        console.print()
        return
    if preview.open_alert is not None and preview.rules_run_again:
        console.print(
            escape(
                f"-> updates the open alert {preview.open_alert} (one more occurrence) and makes it "
                f"{preview.severity} (was {preview.open_alert_severity}) while it is on no incident: the "
                f"rules run again, as for a new {preview.severity} alert:"
            )
        )
    elif preview.open_alert is not None:
        # What keeps the rules from running again when it is more severe on no incident: a hold, if any.
        if preview.maintenance_window is not None:
            why = (
                f"maintenance window {preview.maintenance_window} holds it, so they do not run again while "
                "it does"
            )
        elif preview.inhibited_by is not None:
            why = (
                f"the open alert {preview.inhibited_by} inhibits it (inhibit rule {preview.inhibit_rule}), "
                "so they do not run again while it does"
            )
        else:
            why = "they run again only if it comes more severe while on no incident"
        console.print(
            escape(
                f"-> updates the open alert {preview.open_alert} (one more occurrence): the rules ran when "
                f"it first fired; {why}"
            )
        )
        console.print()
        return
    if preview.maintenance_window is not None:
        console.print(
            escape(f"-> held by maintenance window {preview.maintenance_window}; when the window ends:")
        )
    if preview.inhibited_by is not None:
        console.print(
            escape(
                f"-> inhibited by the open alert {preview.inhibited_by} (inhibit rule "
                f"{preview.inhibit_rule}): stored, and routed when that alert resolves:"
            )
        )
    joined_pages = ""
    paged: list[str] = []
    if incident is not None and incident.back_to_investigating:
        joined_pages = (
            f"; {incident.open_incident} goes back from monitoring to investigating (the fix did not hold)"
        )
        if incident.resumes:
            paged.append(f"its held escalation pages again ({', '.join(incident.resumes)})")
        if incident.resumes_not_paged:
            paged.append(
                f"its held escalation goes on ({'; '.join(incident.resumes_not_paged)}, not paged again)"
            )
    if incident is not None and incident.pages_on_join:
        paged.append(
            f"pages {', '.join(incident.pages_on_join)}, which {incident.open_incident} has not paged"
        )
    joined_pages += f": {' and '.join(paged)}" if paged else ": nobody is paged again"
    if incident is not None and incident.open_incident is not None and incident.depends_on:
        console.print(
            escape(
                f"-> joins {incident.open_incident}: {automation.depends_text(incident.depends_on)}, which "
                f"{incident.open_incident} affects (dependency_window){joined_pages}"
            )
        )
    elif incident is not None and incident.open_incident is not None and incident.storm_guard:
        console.print(
            escape(
                f"-> joins {incident.open_incident}: the storm guard's cap of new incidents is reached for "
                f"every policy it would page (storm_guard){joined_pages}"
            )
        )
    elif incident is not None and incident.open_incident is not None:
        console.print(
            escape(
                f"-> joins {incident.open_incident}, its group's open incident (rule {incident.rule})"
                + joined_pages
            )
        )
    elif incident is not None and incident.not_opened_then is not None:
        due = (
            f"when business hours begin ({when(incident.waits_for_business_hours)})"
            if incident.waits_for_business_hours is not None
            else f"after {format_duration(incident.delay or timedelta(0))}"
        )
        console.print(
            escape(
                f"-> no incident: rule {incident.rule} would open {incident.severity} {incident.title!r} "
                f"{due}, but it no longer applies then ({incident.not_opened_then}): the alert is then "
                "unrouted unless another rule takes it then"
            )
        )
    elif incident is not None:
        group = ", ".join(f"{name}={value!r}" for name, value in incident.group.items())
        within = format_duration(incident.group_window)
        opens = f"-> incident {incident.severity} {incident.title!r} (rule {incident.rule})"
        if incident.waits_for_business_hours is not None:
            opens += (
                f" when business hours begin ({when(incident.waits_for_business_hours)}), if the alert is "
                "still open then"
            )
        elif incident.delay is not None:
            opens += f" after {format_duration(incident.delay)}, if the alert is still open then"
        if not incident.group_window:
            shown = f"{opens}: a new one, as the rule groups no alerts (group_window 0s)"
        elif preview.live:  # the server looked: its group has no open incident
            shown = f"{opens}: a new one, as its group [{group}] has no open incident seen within {within}"
        else:
            shown = f"{opens}, or the open one of its group [{group}] seen within {within}"
        console.print(escape(shown))
        for what, values in (
            ("page", incident.page),
            ("runbooks", incident.runbooks),
            ("notify", incident.notify),
        ):
            if values:
                console.print(escape(f"   {what}: {', '.join(values)}"))
        for failure in incident.template_errors:
            console.print(
                Text(f"   template fails on this alert (its summary stands in): {failure}", style="red")
            )
    elif preview.unrouted:
        if not unrouted_said:
            console.print("-> [magenta]unrouted[/]: stored, and listed by alerts list --unrouted")
    else:
        console.print("-> routed by a rule without an incident action: stored only")
    if preview.auto_resolve_after is not None:
        console.print(f"   auto-resolves when not seen for {format_duration(preview.auto_resolve_after)}")
    for name, start in preview.maintenance_schedules.items():
        occurrence = f"from {when(start)}" if start is not None else "no occurrence left"
        console.print(escape(f"   held during maintenance schedule {name} ({occurrence})"))
    console.print()


@contextmanager
def _audit_progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar of the incidents checked, on stderr when it is a terminal (a long history takes
    seconds); gone once done. Piped or logged, nothing extra is written."""
    if not error_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("checking timelines"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=error_console,
        transient=True,
    ) as bar:
        task = bar.add_task("audit", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


@audit_app.command("verify")
def audit_verify(database_url: DatabaseOption = None, as_json: JsonFlag = False) -> None:
    """Check every incident's hash-chained timeline and its seal; name the first broken entry of each, and
    incident numbers missing (deleted). Needs the server's secret key (WARROOM_SECRET_KEY, else
    data_dir/secret_key): the chain is keyed with it. Exits 1 on any problem (with --json too:
    {"checked": N, "problems": [{"incident", "seq", "reason"}], "warnings": [...]}); warnings alone (on
    PostgreSQL, a number a rolled-back transaction may have taken) exit 0."""
    from dataclasses import asdict

    from warroom.incidents import service as incident_service
    from warroom.settings import timeline_key_of

    settings = _settings(database_url=database_url)
    kept_at = settings.data_dir / "secret_key"
    try:
        secret = settings.existing_secret_key()
    except OSError as exc:  # there, but not readable by this user
        fail(f"cannot read the secret key {kept_at}: {exc.strerror or exc}; run as the server's user")
    if secret is None:
        missing = (
            f"{settings.data_dir} is a file, not a directory"
            if settings.data_dir.exists() and not settings.data_dir.is_dir()
            else f"{kept_at} is missing"
        )
        fail(
            "no secret key: the timeline chain is keyed with the server's; set WARROOM_SECRET_KEY, or "
            f"WARROOM_DATA_DIR to the server's data directory ({missing})",
            code=2,
        )
    database = _database(settings, read_only=True)
    with database.read() as session, _audit_progress() as progress:
        report = incident_service.audit(session, timeline_key_of(secret), progress=progress)
    database.dispose()
    hint = (
        "every incident fails: is WARROOM_SECRET_KEY (or data_dir/secret_key) the server's?"
        if report.wrong_key
        else None
    )
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "problems": [asdict(problem) for problem in report.problems],
                "warnings": report.warnings,
                **({"hint": hint} if hint else {}),
            }
        )
        if report.problems:
            raise typer.Exit(1)
        return
    for warning in report.warnings:
        error_console.print(f"[bold yellow]WARNING[/] {escape(warning)}")
    if report.problems:
        for problem in report.problems:
            where = f"{problem.incident} entry #{problem.seq}" if problem.seq else problem.incident
            error_console.print(f"[bold red]BROKEN[/] {escape(f'{where}: {problem.reason}')}")
        if hint:
            error_console.print(f"[bold yellow]HINT[/] {escape(hint)}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/] {report.checked} timeline entries verified")


@severity_app.command("list")
def severity_list(as_json: JsonFlag = False) -> None:
    """Show the severity matrix."""
    with api_errors(), Client() as client:
        levels = client.severities()
    emit(
        as_json,
        levels,
        lambda: table(
            "Severity matrix",
            [
                IdColumn("id"),
                WordColumn("name"),
                WordColumn("respond within"),
                "definition",
                "escalation",
                "communication",
            ],
            [(s.id, s.name, s.response_target, s.definition, s.escalation, s.communication) for s in levels],
        ),
    )


@demo_app.command("seed")
def demo_seed(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Load example incidents into an empty database."""
    from warroom.context import AppContext
    from warroom.demo import check_demo_org, seed_demo

    settings = _settings(config, database_url)
    org = _org(settings)
    try:
        check_demo_org(org)  # before the database is made: an org with no services refuses the demo
    except WarroomError as exc:
        fail(exc.message)
    database = _database(settings, create=True)
    AppContext(settings=settings, db=database, org=org)  # subscribers find the org file through it
    with database.write() as session:
        created = seed_demo(session, org)
    database.dispose()
    console.print(
        f"demo data: {created} incident(s) created"
        if created
        else "demo data: database already has incidents"
    )


def main() -> None:
    app()
