"""Fixtures for the storage tests: every `db` test runs on SQLite and on PostgreSQL.

PostgreSQL tests each get a fresh, uniquely named schema (selected through `search_path`
in the URL) that is dropped afterwards, so parallel runs never see each other's rows.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.db import Database, sqlite_url
from tests.support import pg_schema_url

WORKER = Path(__file__).with_name("_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (not migrated)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def run_threads() -> Callable[[int, Callable[[int], Any]], list[Any]]:
    """`run_threads(n, target)`: see `_run_threads`."""
    return _run_threads


@pytest.fixture
def run_processes(tmp_path: Path) -> Callable[[list[list[str]]], list[str]]:
    """`run_processes([[args...], ...])`: see `_run_processes`."""
    return functools.partial(_run_processes, tmp_path)


def _run_threads(n: int, target: Callable[[int], Any]) -> list[Any]:
    """Run target(0..n-1) in n threads released together; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def _run_processes(tmp_path: Path, args_per_process: list[list[str]]) -> list[str]:
    """Run `_worker.py` once per argument list, all released by one go-file at the same
    moment; returns each process's stdout and fails if any exits non-zero."""
    go_file = tmp_path / f"go-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(go_file), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in args_per_process
    ]
    # Each worker prints "ready" once connected; release them only when all are.
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", p.communicate()[1]
    go_file.touch()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outputs.append(out)
    return outputs
