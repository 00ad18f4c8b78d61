"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a temporary folder.

The server listens on 127.0.0.1 at a free port, with one password-protected
superuser (scram-sha-256 for every connection), fsync off, and is removed with its
folder on exit. PostgreSQL refuses to run as root, so under root (CI containers)
initdb and pg_ctl run as the `postgres` user when there is one, else `nobody`.

The binaries are found on PATH, else in /usr/lib/postgresql/<major>/bin (Debian's
`postgresql` package does not put them on PATH). Nothing here is specific to a connector.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "etl_test"
PASSWORD = "s3cr3t-Pw-7f2a9c"  # distinctive, so a test can search for it anywhere
DATABASE = "postgres"
BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin")


class ServerUnavailable(Exception):
    """No PostgreSQL binaries here, or the server would not start."""


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    def dsn(self, *, password: str | None = None, port: int | None = None, dbname: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{self.password if password is None else password}"
            f"@{self.host}:{port or self.port}/{dbname or self.dbname}"
        )


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: PATH first, else the newest packaged major."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = [Path(d) for pattern in BIN_GLOBS for d in glob.glob(pattern)]
    candidates = [d for d in candidates if (d / "pg_ctl").exists() and (d / "initdb").exists()]
    if not candidates:
        raise ServerUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")

    def major(path: Path) -> int:
        found = re.search(r"(\d+)", str(path))
        return int(found.group(1)) if found else 0

    return max(candidates, key=major)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _runner() -> dict:
    """subprocess arguments that drop root to an unprivileged account, when root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    raise ServerUnavailable("running as root and there is no `postgres` or `nobody` account to run PostgreSQL as")


def _run(args: list, runner: dict, env: dict, timeout: float = 120) -> None:
    done = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=timeout, **runner)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        raise ServerUnavailable(f"{Path(args[0]).name} failed: {' / '.join(output[-3:])}")


@contextmanager
def running_server() -> Iterator[Server]:
    """Start a fresh server; stop it and delete its folder on exit."""
    bin_dir = find_bin_dir()
    runner = _runner()
    # Not under pytest's tmp folder: under root that folder is closed to the server's account.
    home = Path(tempfile.mkdtemp(prefix="etl-postgres-"))
    data, sockets, log = home / "data", home / "sockets", home / "server.log"
    sockets.mkdir()
    pwfile = home / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if runner:
        for path in (home, sockets, pwfile):
            os.chown(path, runner["user"], runner["group"])
    # A clean environment: no PG* variables of the caller, a locale every system has.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    started = False
    try:
        _run(
            [bin_dir / "initdb", "-D", data, "-U", USER, "--pwfile", pwfile, "--auth=scram-sha-256",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            runner, env,
        )
        for _attempt in range(3):  # another process may take the free port first
            port = free_port()
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run([bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start"], runner, env)
            except ServerUnavailable:
                continue
            started = True
            break
        if not started:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise ServerUnavailable(f"pg_ctl could not start the server: {' / '.join(tail)}")
        yield Server("127.0.0.1", port, USER, PASSWORD, DATABASE)
    finally:
        if started:
            try:
                _run([bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], runner, env)
            except (ServerUnavailable, subprocess.TimeoutExpired):
                _run([bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], runner, env)
        shutil.rmtree(home, ignore_errors=True)


def server_required() -> bool:
    """CI must run these tests: there, a server that cannot start is a failure."""
    return os.environ.get("ETL_REQUIRE_SHARED_FIXTURES") == "1" or bool(os.environ.get("CI"))


def unavailable(reason: str):
    if server_required():
        pytest.fail(f"PostgreSQL test server unavailable: {reason} (CI requires it)")
    pytest.skip(f"PostgreSQL test server unavailable: {reason}")


@contextmanager
def server_or_skip() -> Iterator[Server]:
    """`running_server()`, skipping the tests (failing them in CI) when it cannot start."""
    try:
        context = running_server()
        server = context.__enter__()
    except (ServerUnavailable, OSError, subprocess.TimeoutExpired) as error:
        unavailable(str(error))
    try:
        yield server
    finally:
        context.__exit__(None, None, None)
