"""A throw-away PostgreSQL 15 cluster on loopback for the shared-store tests.

``initdb`` into a temporary directory (as the ``postgres`` OS user when the tests run as root: initdb
refuses root), ``pg_ctl start`` on a free port with ``listen_addresses=127.0.0.1`` and the unix socket in
that directory; TCP logins need the superuser's password (scram-sha-256, read from a 0600 file like the
runtime's ``store_password_file``), the socket is trusted for the fixture's own administration.  Stopped
by the postmaster's PID at the end.  Missing binaries skip on a laptop and fail under ``CI=true``
(``scripts/install-test-deps.sh`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from peers import in_ci

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "imsconf"


def _binary(name: str) -> str:
    path = PG_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        msg = f"PostgreSQL's {name} is not installed (scripts/install-test-deps.sh installs postgresql)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One running cluster: ``dsn(db)`` for a client, ``create_database()`` for a test's own database."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="imsconf-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.password = secrets.token_urlsafe(18)
        self.password_file = self.root / "password"
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        self._runas: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            pwfile = self.root / "initpw"
            pwfile.write_text(self.password + "\n")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            pwfile.chmod(0o600)
            self._runas = ["runuser", "-u", "postgres", "--"]
        else:
            pwfile = self.root / "initpw"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
        self._run(
            _binary("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()

    def _run(self, *argv: str) -> None:
        # no pipes: the postmaster pg_ctl leaves running would hold them open
        subprocess.run([*self._runas, *argv], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w",
                  "-t", "60", "start")  # fmt: skip

    def restart(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-m", "fast", "-w",
                  "-t", "60", "restart")  # fmt: skip

    def stop_now(self) -> None:
        """Stop the cluster (fast shutdown) by its postmaster's PID; waits until it has gone."""
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop_now()
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        """A TCP DSN without the password (the stores read it from ``password_file``)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run *sql* as the superuser over the trusted unix socket (CREATE DATABASE cannot run in a
        transaction: autocommit)."""
        import psycopg

        with psycopg.connect(host=str(self.root), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(sql.encode())

    def create_database(self) -> str:
        """A fresh, empty namespace for one test: a schema of its own, first in the DSN's search_path
        (much cheaper than CREATE DATABASE; the stores see only their own tables)."""
        name = "t_" + secrets.token_hex(6)
        self.admin(f"CREATE SCHEMA {name}")
        return self.dsn() + f"?options=-csearch_path%3D{name}"
