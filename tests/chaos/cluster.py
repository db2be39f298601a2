"""The chaos run's own servers: PostgreSQL, Redis, the vendor, API servers and workers.

Everything listens on spare loopback ports and keeps its files in one temporary
directory; nothing here touches the shared PostgreSQL (5432) or Redis (6379). Each
:class:`Service` remembers the process it started and stops only that one (by pid).

PostgreSQL refuses to run as root: as root, ``initdb``, ``pg_ctl`` and ``postgres`` run
as the ``postgres`` system user (``runuser``) in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("AI_AGENTS_CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("AI_AGENTS_CHAOS_REDIS_SERVER", "redis-server")
SHARED_PORTS = frozenset({5432, 6379})


def spare_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in SHARED_PORTS:
            return port


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready within {timeout} s")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """One child process with its log file; stopped (or killed) by its own pid only."""

    def __init__(self, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def spawn(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        if self._log is not None:  # a restart: same log file, new handle
            self._log.close()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            cwd=str(ROOT),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Postgres:
    """A throw-away cluster: initdb, trust auth, loopback only, one ``chaos`` database."""

    def __init__(self, base: Path) -> None:
        self.port = spare_port()
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/chaos"
        self.started = False

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        return done

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        self._run(
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "chaos",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: no checkpoint, every backend killed (a crash)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if self.started and (self.data / "postmaster.pid").exists():
            self._run(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "stop",
                check=False,
            )


class Redis(Service):
    """``redis-server`` without persistence: a restart starts empty."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__("redis", log_dir)
        self.port = spare_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.spawn(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--maxmemory-policy", "noeviction",
            ]
        )  # fmt: skip
        wait_until(lambda: _listening(self.port), timeout=20, what="redis")


class Vendor(Service):
    """The chaos vendor (:mod:`tests.chaos.vendor`) in its own process."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__("vendor", log_dir)
        self.port = spare_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, env: Mapping[str, str]) -> None:
        self.spawn([sys.executable, "-m", "tests.chaos.vendor", "--port", str(self.port)], env)
        wait_until(lambda: _listening(self.port), timeout=30, what="vendor")

    def set_mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/_chaos/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_chaos/stats", timeout=5).json()
        return data


class ApiServer(Service):
    def __init__(self, name: str, log_dir: Path) -> None:
        super().__init__(name, log_dir)
        self.port = spare_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"

    def start(self, env: Mapping[str, str]) -> None:
        argv = [sys.executable, "-m", "ai_agents", "serve", "--port", str(self.port)]
        self.spawn([*argv, "--log-level", "warning", "--no-access-log"], env)
        wait_until(self._healthy, timeout=60, what=self.name)

    def _healthy(self) -> bool:
        if not self.running:
            raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class Worker(Service):
    def start(self, env: Mapping[str, str]) -> None:
        argv = [
            sys.executable,
            "-m",
            "ai_agents.workers",
            "--name",
            self.name,
            "--concurrency",
            "8",
        ]
        self.spawn([*argv, "--poll-interval", "0.2"], env)
        wait_until(self._started, timeout=60, what=self.name)

    def _started(self) -> bool:
        if not self.running:
            raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
        return "worker started" in self.log_path.read_text(errors="replace")


#: The agent's model: limits far above the load, so the run measures faults, not the
#: per-model rate limiter (a built-in OpenAI model's TPM would make most runs wait).
MODEL = "chaos-model"
MODELS = {
    "openai": {
        MODEL: {
            "context_window": 128_000,
            "max_output": 1_000,
            "rpm": 1_000_000,
            "tpm": 1_000_000_000,
            "supports_tools": True,
            "supports_vision": False,
            "cost_per_1m_input": 0.1,
            "cost_per_1m_output": 0.4,
        }
    }
}


def process_env(
    *, database_url: str, redis_url: str, vendor_url: str, base: Path
) -> dict[str, str]:
    """The environment of every API server and worker (fast leases, timeouts, breakers)."""
    models_file = base / "models.json"
    models_file.write_text(json.dumps(MODELS))
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_AGENTS_", "OPENAI_", "ANTHROPIC_", "OLLAMA_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST"}
    }
    provider = {"adapter": "openai", "base_url": f"{vendor_url}/v1", "api_key": "sk-chaos"}
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "AI_AGENTS_EMBEDDED": "0",
        "AI_AGENTS_DATABASE_URL": database_url,
        "AI_AGENTS_REDIS_URL": redis_url,
        "AI_AGENTS_REDIS_PREFIX": "chaos:",
        # The agent's "openai" provider is the chaos vendor; a hang costs 4 s per attempt.
        "AI_AGENTS_PROVIDERS": json.dumps({"openai": {**provider, "timeout": 4}}),
        "AI_AGENTS_MODELS_FILE": str(models_file),
        "AI_AGENTS_TOOL_MODULES": "tests.chaos.tools",
        "AI_AGENTS_DB_POOL_SIZE": "5",
        "AI_AGENTS_DB_MAX_OVERFLOW": "10",
        # A killed worker's run expires (and its job is taken over) within seconds.
        "AI_AGENTS_RUN_LEASE_SECONDS": "6",
        "AI_AGENTS_JOB_VISIBILITY_TIMEOUT": "5",
        "AI_AGENTS_JOB_MAX_ATTEMPTS": "8",
        "AI_AGENTS_JOB_RETRY_BACKOFF": "1",
        "AI_AGENTS_JOB_RETRY_BACKOFF_MAX": "4",
        # An open breaker tries again after 3 s; a probe lost with its process after 10 s.
        "AI_AGENTS_BREAKER_RECOVERY_TIMEOUT": "3",
        "AI_AGENTS_BREAKER_PROBE_TIMEOUT": "10",
        "AI_AGENTS_API_BUSY_TIMEOUT": "60",
        "AI_AGENTS_API_RATE_LIMIT_RPM": "0",
    }


def remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
