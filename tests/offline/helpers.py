"""A stack with feature logging and the offline archive, for the offline tests."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from vahini import wiring
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish
from vahini.registry.publish import RegistryFollower
from vahini.settings import Settings
from vahini.streams.app import archive_topics, build_archive_worker
from tests.processes_helpers import WorkerThread


def logging_registry(tmp_path: Path, sample: float = 1.0) -> Path:
    """The sample registry with home_ranker logging `sample` of its responses, and no
    in-process LRU: an LRU serves a value up to lru_ttl_s old by design, which a training
    set (the value as of the moment) would not reproduce."""
    directory = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, directory)
    models = directory / "models.yaml"
    models.write_text(models.read_text().replace("  - name: home_ranker\n",
                                                 f"  - name: home_ranker\n    log: {{sample: {sample}}}\n", 1))
    groups = directory / "feature_groups.yaml"
    groups.write_text(re.sub(r"lru_size: \d+", "lru_size: 0", groups.read_text()))
    return directory


def with_logging(settings: Settings, tmp_path: Path, unique: str, sample: float = 1.0) -> Settings:
    topics = settings.topics.model_copy(update={"feature_log": f"fl-{unique}"})
    archive = settings.archive.model_copy(update={"url": f"file://{tmp_path}/archive", "group": f"ar-{unique}",
                                                  "flush_interval_s": 0.5})
    settings = settings.model_copy(update={"topics": topics, "archive": archive})
    store = wiring.config_store(settings)
    publish.apply(logging_registry(tmp_path, sample), store)
    store.close()
    return settings


def RunningArchiveWorker(settings: Settings) -> WorkerThread:  # named as the class it builds
    log, archive = wiring.event_log(settings), wiring.archive(settings)
    for topic in archive_topics(settings):
        log.create_topic(topic, settings.topics.partitions)
    registry = RegistryFollower(wiring.config_store(settings))
    return WorkerThread(build_archive_worker(settings, log, archive, registry), registry, log)


def wait_until_archived(settings: Settings, timeout_s: float = 60) -> None:
    """Until the archive's group has committed the end of both of its topics."""
    log = wiring.event_log(settings)
    deadline = time.monotonic() + timeout_s
    try:
        ends = {t: log.end_offsets(t) for t in archive_topics(settings)}
        while not all(log.committed(settings.archive.group, t).get(p, 0) >= end
                      for t, of_topic in ends.items() for p, end in of_topic.items()):
            assert time.monotonic() < deadline, "the archive worker did not catch up"
            time.sleep(0.1)
    finally:
        log.close()
