"""Tests of the shared package: the routes every app has, the worker loop and its heartbeat,
and the healthcheck that reads it. `uv run nox -s tests -- shared` runs them."""

import os
import signal
import time

from starlette.testclient import TestClient

from shared import healthcheck, worker
from shared.app import create_app


def test_every_app_answers_health_and_greets(monkeypatch):
    monkeypatch.delenv("MODEL_NAME", raising=False)
    with TestClient(create_app("svc", "hi")) as client:
        assert client.get("/health").json() == {"status": "ok", "service": "svc"}
        assert client.get("/").json() == {"service": "svc", "message": "hi", "model": ""}


def test_the_worker_loop_beats_before_each_call_until_sigterm(monkeypatch, tmp_path):
    beat = tmp_path / "heartbeat"
    monkeypatch.setenv("HEARTBEAT_FILE", str(beat))
    seen = []

    def work():
        seen.append(beat.exists())
        beat.unlink()
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `docker stop` does

    worker.run(work, interval=0)
    assert seen == [True, True]  # and the loop ended after the second call


def test_the_healthcheck_reads_the_heartbeat_age(monkeypatch, tmp_path):
    beat = tmp_path / "heartbeat"
    monkeypatch.setenv("HEARTBEAT_FILE", str(beat))
    monkeypatch.setenv("HEARTBEAT_MAX_AGE", "60")
    assert healthcheck.main() == 1  # no heartbeat yet
    worker.heartbeat()
    assert healthcheck.main() == 0
    stale = time.time() - 61
    os.utime(beat, (stale, stale))
    assert healthcheck.main() == 1  # a worker stuck in one call for over a minute
