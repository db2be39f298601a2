"""A local 3-primary Redis Cluster for the tests (``make test-cluster``).

``python -m tests.redis_cluster [PYTEST ARGS]`` starts Debian's ``redis-server`` six
times in cluster mode on spare ports (3 primaries, 3 replicas, no persistence, files in
a temporary directory), joins them with ``redis-cli --cluster create``, runs pytest
(default: the Redis-touching integration tests, :data:`CLUSTER_TESTS`) with
``AI_AGENTS_TEST_REDIS_URL=redis+cluster://127.0.0.1:<port>/0``, then stops what it
started and exits with pytest's status. :class:`LocalRedisCluster` is also what
``tests/integration/test_redis_cluster.py`` starts (its failover test).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "apt-get install -y redis-server redis-tools"

#: The integration tests that use Redis (jobs, workers, limiter, breakers, runs, API).
CLUSTER_TESTS = [
    "tests/integration/test_redis_cluster.py",
    "tests/integration/test_jobs.py",
    "tests/integration/test_workers.py",
    "tests/integration/test_rate_limiter.py",
    "tests/integration/test_rate_limit_tenants.py",
    "tests/integration/test_resilience_breaker.py",
    "tests/integration/test_runs.py",
    "tests/integration/test_run_serialization.py",
    "tests/integration/test_runner.py",
    "tests/integration/test_api_jobs.py",
    "tests/integration/test_api_hardening.py",
    "tests/integration/test_api_errors.py",
    "tests/integration/test_memory_tools.py",
    "tests/integration/test_tenancy_side_effects.py",
]


def binaries() -> tuple[str, str] | None:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def _free_ports(count: int) -> list[int]:
    """*count* spare ports whose cluster bus ports (+10000) are spare too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class LocalRedisCluster:
    """Six ``redis-server`` processes forming a cluster of *primaries* primaries."""

    def __init__(self, primaries: int = 3, replicas: int = 1) -> None:
        found = binaries()
        if found is None:
            raise RuntimeError(f"redis-server / redis-cli not found ({INSTALL_HINT})")
        self.server, self.cli = found
        self.count = primaries * (1 + replicas)
        self.replicas = replicas
        self.primaries = primaries
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.workdir: Path | None = None

    @property
    def url(self) -> str:
        """A cluster URL naming a live node (any node leads to the others)."""
        return f"redis+cluster://127.0.0.1:{self.live_ports()[0]}/0"

    # --- running ------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> LocalRedisCluster:
        self.workdir = Path(tempfile.mkdtemp(prefix="ai_agents_redis_cluster_"))
        self.ports = _free_ports(self.count)
        try:
            for port in self.ports:
                self._spawn(port)
            for port in self.ports:
                self._wait_answering(port, timeout)
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, port: int) -> None:
        assert self.workdir is not None
        log = open(self.workdir / f"redis-{port}.log", "wb")  # noqa: SIM115 (kept by Popen)
        self.processes[port] = subprocess.Popen(
            [
                self.server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def command(self, port: int, *args: str, timeout: float = 10.0) -> str:
        """``redis-cli -p PORT ARGS...`` output (raises when it fails)."""
        done = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(port), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        return done.stdout.decode()

    def _wait_answering(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes[port]
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited: {self.log(port)}")
            try:
                if "PONG" in self.command(port, "PING", timeout=2):
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} does not answer")
            time.sleep(0.05)

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node reports ``cluster_state:ok`` and agrees on the slots."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                live = self.live_ports()
                states = [self.command(p, "CLUSTER", "INFO", timeout=2) for p in live]
                replicas = [n for n in self.nodes(live[0]) if n["role"] == "slave"]
                # Replicas count only once their first sync is done (link up).
                synced = all(
                    "master_link_status:up" in self.command(int(n["port"]), "INFO", "replication")
                    for n in replicas
                    if not n["failed"] and int(n["port"]) in live
                )
                if (
                    all("cluster_state:ok" in s for s in states)
                    and synced
                    and (len(live) < self.count or len(replicas) == self.primaries * self.replicas)
                ):
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def log(self, port: int) -> str:
        assert self.workdir is not None
        path = self.workdir / f"redis-{port}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # --- topology -----------------------------------------------------------------------

    def nodes(self, via: int | None = None) -> list[dict[str, str]]:
        """``CLUSTER NODES`` as dicts: id, port, role (master/slave), master (id), slots."""
        port = via if via is not None else self.live_ports()[0]
        out = []
        for line in self.command(port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            flags = fields[2].split(",")
            out.append(
                {
                    "id": fields[0],
                    "port": fields[1].split("@")[0].rsplit(":", 1)[1],
                    "role": "master" if "master" in flags else "slave",
                    "failed": "yes" if "fail" in flags or "fail?" in flags else "",
                    "master": fields[3],
                    "slots": " ".join(fields[8:]),
                }
            )
        return out

    def keyslot(self, key: str) -> int:
        return int(self.command(self.live_ports()[0], "CLUSTER", "KEYSLOT", key).strip())

    def owner(self, key: str) -> int:
        """The port of the primary serving *key*'s slot."""
        port = self.live_ports()[0]
        slot = self.keyslot(key)
        for node in self.nodes(port):
            if node["role"] != "master" or node["failed"]:
                continue
            for part in node["slots"].split():
                if part.startswith("["):
                    continue
                low, _, high = part.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(node["port"])
        raise RuntimeError(f"no primary serves slot {slot}")

    def replica_of(self, primary_port: int) -> int:
        nodes = self.nodes()
        primary = next(n for n in nodes if n["port"] == str(primary_port))
        return int(next(n["port"] for n in nodes if n["master"] == primary["id"]))

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash: whatever it had not replicated yet is lost)."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def promote(self, replica_port: int, timeout: float = 30.0) -> None:
        """``CLUSTER FAILOVER TAKEOVER`` on *replica_port*, until it serves as a primary."""
        self.command(replica_port, "CLUSTER", "FAILOVER", "TAKEOVER")
        deadline = time.monotonic() + timeout
        while "role:master" not in self.command(replica_port, "INFO", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {replica_port} was not promoted")
            time.sleep(0.05)

    # --- stopping -----------------------------------------------------------------------

    def stop(self) -> None:
        """Kill only the processes this object started, then remove its directory."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    import os

    # Options only (make's PYTEST_ARGS): still over the Redis-touching tests.
    paths = [a for a in argv if Path(a.split("::")[0]).exists()]
    args = argv if paths else [*argv, *CLUSTER_TESTS]
    started = time.monotonic()
    with LocalRedisCluster() as cluster:
        print(f"Redis Cluster up on ports {cluster.ports} ({cluster.url})", flush=True)
        env = {**os.environ, "AI_AGENTS_TEST_REDIS_URL": cluster.url}
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", *args], env=env)
    print(f"Redis Cluster stopped ({time.monotonic() - started:.0f} s in all)", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
