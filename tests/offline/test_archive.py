"""The offline archive: `vahini ingest archive` loses nothing under kill -9, what it
writes twice is read once, and `vahini replay --into archive` backfills it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from vahini import wiring
from vahini.offline.archive_reader import ArchiveReader
from vahini.producer import EventProducer
from tests.conftest_backends import STACKS, stack_settings, with_sample_registry
from tests.offline.helpers import with_logging
from tests.processes_helpers import wait_for
from tests.streams.processes import settings_env

EVENTS, CLICKS = 20_000, 400


@pytest.fixture(params=STACKS)
def settings(request, tmp_path, unique):
    settings = with_logging(with_sample_registry(stack_settings(request.param, request, tmp_path, unique)),
                            tmp_path, unique)
    return settings.model_copy(update={"topics": settings.topics.model_copy(update={"sessions": "unused"})})


def _produce(settings, first: int = 0) -> int:
    now = int(time.time() * 1000)
    p = EventProducer.from_settings(settings, "test")
    for i in range(first, first + EVENTS):
        p.feature_update("user", {"user_id": f"u{i % 500}"}, "user_activity", {"clicks_1d": i}, now - 30_000 + i)
    for i in range(CLICKS):
        p.interaction(f"c{first}-{i}", f"u{i % 50}", f"p{i}", "CLICK", now - 5000 + i, category_id="shoes")
    p.flush()
    return now


def _archived(settings) -> tuple[int, int, int]:
    """(distinct feature rows, files' feature rows, distinct interactions)."""
    archive = wiring.archive(settings)
    files = archive.feature_files("user_activity")
    with duckdb.connect() as db:
        distinct, raw = db.execute("SELECT count(DISTINCT (key, event_time_ms)), count(*) FROM read_parquet(?)",
                                   [files]).fetchone() if files else (0, 0)
        clicks = db.execute("SELECT count(DISTINCT event_id) FROM read_parquet(?)",
                            [archive.interaction_files()]).fetchone()[0] if archive.interaction_files() else 0
    return distinct, raw, clicks


def _archive_process(settings, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vahini.cli", "ingest", "archive", "--batch-size", "200",
                             "--flush-rows", "500",
                             "--archive", settings.archive.url, "--group", settings.archive.group, *extra],
                            env=settings_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_loses_nothing_and_what_is_written_twice_is_read_once(settings):
    now = _produce(settings)
    worker = _archive_process(settings)
    try:
        wait_for(lambda: len(wiring.archive(settings).feature_files("user_activity")) >= 2 or worker.poll(), 120,
                 "the archive worker to write files")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    log = wiring.event_log(settings)
    topic = settings.topics.feature_updates
    left = sum(log.end_offsets(topic).values()) - sum(log.committed(settings.archive.group, topic).values())
    log.close()
    assert left > 0  # killed with work left: the restart has some to do
    again = _archive_process(settings, "--stop-at-end")
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    distinct, raw, clicks = _archived(settings)
    assert (distinct, clicks) == (EVENTS, CLICKS) and raw >= EVENTS
    # A user's value as of a moment is that of the newest event at or before it.
    reader = ArchiveReader(wiring.archive(settings), 180 * 86_400_000)
    try:
        moment = now - 30_000 + 1234
        [row] = reader.rows_as_of([("user", "u234", "user_activity", moment)]).values()
        assert row.event_time_ms == moment
        [clicked] = reader.histories_as_of([("u7", "CLICK", now, 1000)]).values()
        assert [c.event_id for c in clicked] == [f"c0-{i}" for i in range(CLICKS - 1, -1, -1) if i % 50 == 7]
    finally:
        reader.close()


def test_a_replay_backfills_the_archive_and_a_second_one_changes_nothing_read(settings):
    _produce(settings)
    for _ in range(2):
        for topic in (settings.topics.feature_updates, settings.topics.interactions):
            result = subprocess.run([sys.executable, "-m", "vahini.cli", "replay", "--topic", topic, "--from",
                                     "earliest", "--into", "archive", "--no-progress"],
                                    env={**settings_env(settings), "VAHINI_ARCHIVE__URL": settings.archive.url},
                                    capture_output=True, text=True, timeout=180)
            assert result.returncode == 0 and "archive replay done" in result.stdout, result.stderr
        distinct, raw, clicks = _archived(settings)
        assert (distinct, clicks) == (EVENTS, CLICKS)
    assert raw == 2 * EVENTS  # written twice, read once
