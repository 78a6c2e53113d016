"""Workers as separate OS processes, started the way an operator starts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

from vahini.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAHINI_")}
    env.update({
        "VAHINI_EVENT_LOG": settings.event_log, "VAHINI_FEATURE_STORE": settings.feature_store,
        "VAHINI_FEATURE_CACHE": settings.feature_cache, "VAHINI_CONFIG_STORE": settings.config_store,
        "VAHINI_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
    })
    if settings.kafka_group_instance_id:
        env["VAHINI_KAFKA_GROUP_INSTANCE_ID"] = settings.kafka_group_instance_id
    for section in ("topics", "ingest", "cassandra", "cache", "interactions", "archive", "redis", "zookeeper"):
        part = getattr(settings, section)
        for name in type(part).model_fields:
            value = getattr(part, name)
            if value is not None:
                env[f"VAHINI_{section.upper()}__{name.upper()}"] = _env_value(value)
    return env


def _env_value(value) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


class WorkerProcess:
    def __init__(self, settings: Settings, *extra: str, metrics_port: int | None = None):
        args = [sys.executable, "-m", "vahini.cli", "--json-logs", "ingest", "features", *extra]
        if metrics_port:
            args += ["--metrics-port", str(metrics_port)]
        # Logs go to a file, not a pipe: a pipe nobody reads fills up during a long
        # outage and blocks the worker on its next log line.
        self.log_file = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(args, env=settings_env(settings), stdout=subprocess.PIPE,
                                     stderr=self.log_file, text=True)

    def logs(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60) -> dict:
        """SIGTERM, wait for the drain, return the worker's final summary."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, self.logs()[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def alive(self) -> bool:
        return self.proc.poll() is None
