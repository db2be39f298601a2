"""PgBouncer in transaction mode in front of the test PostgreSQL (``make test-pgbouncer``).

``python -m tests.pgbouncer [PYTEST ARGS]`` starts Debian's ``pgbouncer`` on a spare
port, runs pytest (default: ``tests/integration``) with every test database reached
through it and prepared statements off (``AI_AGENTS_DB_PREPARED_STATEMENTS=off``), then
stops the pooler and exits with pytest's status. Databases are still created and
migrated from templates directly on PostgreSQL (``CREATE DATABASE ... TEMPLATE`` needs
a template nobody is connected to, and the pooler keeps idle server connections).
:class:`PgBouncer` is also what ``tests/integration/test_pgbouncer.py`` starts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

INSTALL_HINT = "apt-get install -y pgbouncer (.ci/run installs it when it is missing)"


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    debian = Path("/usr/sbin/pgbouncer")
    return str(debian) if debian.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """One ``pgbouncer`` process, transaction pooling, in front of *upstream_url*'s server.

    Every database name is passed through (``* = host port``); at most
    *server_connections* server connections are opened in all (clients wait for one),
    so the tests' many pools share a small budget, as they would in production.
    """

    def __init__(self, upstream_url: str, *, server_connections: int = 40) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 5432
        self.user = parts.username or "postgres"
        self.server_connections = server_connections
        self.port = 0
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``postgresql://user@127.0.0.1:port`` (append ``/dbname``)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}"

    def start(self) -> PgBouncer:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError(f"pgbouncer is not installed: {INSTALL_HINT}")
        self.workdir = Path(tempfile.mkdtemp(prefix="aat-pgbouncer-"))
        self.port = _free_port()
        (self.workdir / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.workdir / "pgbouncer.ini").write_text(self._config())
        command = [binary, "-q"]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            shutil.chown(self.workdir, "postgres")
            for item in self.workdir.iterdir():
                shutil.chown(item, "postgres")
            command += ["-u", "postgres"]
        command.append(str(self.workdir / "pgbouncer.ini"))
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        self._wait_until_listening()
        return self

    def _config(self) -> str:
        assert self.workdir is not None
        return f"""[databases]
* = host={self.upstream_host} port={self.upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.workdir / "users.txt"}
pool_mode = transaction
max_client_conn = 5000
default_pool_size = 10
max_user_connections = {self.server_connections}
server_idle_timeout = 10
query_wait_timeout = 60
ignore_startup_parameters = extra_float_digits
logfile = {self.workdir / "pgbouncer.log"}
"""

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen on {self.port} within 15 s: {self.log()}")

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log" if self.workdir else None
        return path.read_text()[-2000:] if path and path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    upstream = os.environ.get(
        "AI_AGENTS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    with PgBouncer(upstream) as bouncer:
        print(f"pgbouncer (transaction mode) on port {bouncer.port} in front of {upstream}")
        env = {
            **os.environ,
            "AI_AGENTS_TEST_POOLER_URL": bouncer.base_url,
            "AI_AGENTS_DB_PREPARED_STATEMENTS": "off",
        }
        command = [sys.executable, "-m", "pytest", "-q", *(argv or ["tests/integration"])]
        return subprocess.call(command, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
