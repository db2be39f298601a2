#!/usr/bin/env bash
# Start the local PostgreSQL and Redis that the integration tests use, if they are not
# answering. Uses the machine's own packages (Debian's postgresql and redis-server).
set -uo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432: starting it"
  if ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "error: PostgreSQL did not start (install Debian's postgresql package)" >&2; exit 1; }
fi

if ! redis_up; then
  echo "Redis is not answering on 127.0.0.1:6379: starting it"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 40); do redis_up && break; sleep 0.25; done
  redis_up || { echo "error: Redis did not start (install Debian's redis-server package)" >&2; exit 1; }
fi
echo "PostgreSQL and Redis are answering"

# PgBouncer is not a service the tests use running: tests/pgbouncer.py starts its own in
# front of the test PostgreSQL (tests/integration/test_pgbouncer.py, make test-pgbouncer).
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "PgBouncer is not installed: installing Debian's pgbouncer"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null; }
  fi
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 \
    || { echo "error: install PgBouncer (apt-get install -y pgbouncer)" >&2; exit 1; }
fi
