"""One typed settings object: defaults, TOML file, environment, flags, in that order of strength."""

import pytest
from pydantic import ValidationError

from vahini import wiring
from vahini.cli import main
from vahini.settings import Settings, load_settings

TOML = """
feature_store = "cassandra://db-1,db-2:9142/features"
feature_cache = "redis://cache:6379/2"

[ingest]
batch_size = 777
batch_linger_ms = 9
"""


@pytest.fixture
def clean_env(monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("VAHINI_")]:
        monkeypatch.delenv(key)
    return monkeypatch


def test_defaults_are_the_embedded_stack(clean_env):
    s = load_settings()
    assert (s.event_log, s.feature_store, s.feature_cache, s.config_store) == (
        "sqlite:///.vahini/events.db", "sqlite:///.vahini/features.db", "sqlite:///.vahini/hot.db", "file://.vahini/config")


def test_environment_beats_the_file_and_flags_beat_both(clean_env, tmp_path):
    path = tmp_path / "vahini.toml"
    path.write_text(TOML)
    clean_env.setenv("VAHINI_INGEST__BATCH_SIZE", "5000")
    clean_env.setenv("VAHINI_FEATURE_CACHE", "redis://env:6379/0")
    s = load_settings(str(path), metrics_port=9100)
    assert s.feature_store == "cassandra://db-1,db-2:9142/features"   # file
    assert s.feature_cache == "redis://env:6379/0"                      # env over file
    assert s.ingest.batch_size == 5000 and s.ingest.batch_linger_ms == 9
    assert s.metrics_port == 9100                                       # flag
    clean_env.setenv("VAHINI_SETTINGS_FILE", str(path))
    assert Settings().feature_store == "cassandra://db-1,db-2:9142/features"


def test_the_old_name_of_the_feature_cache_still_works_for_a_release_with_a_warning(clean_env, tmp_path):
    path = tmp_path / "old.toml"
    path.write_text('hot_tier = "redis://old-file:6379/0"\n')
    with pytest.warns(FutureWarning, match=r"hot_tier \(VAHINI_HOT_TIER\) is now feature_cache"):
        assert load_settings(str(path)).feature_cache == "redis://old-file:6379/0"
    clean_env.setenv("VAHINI_HOT_TIER", "redis://old-env:6379/0")
    with pytest.warns(FutureWarning, match="Using feature_cache = 'redis://old-env:6379/0'"):
        assert load_settings().feature_cache == "redis://old-env:6379/0"
    clean_env.setenv("VAHINI_FEATURE_CACHE", "redis://new:6379/0")  # the new name wins, and the warning says so
    with pytest.warns(FutureWarning, match="Using feature_cache = 'redis://new:6379/0'"):
        assert load_settings().feature_cache == "redis://new:6379/0"
    clean_env.setenv("VAHINI_HOT_TIER", "redis://new:6379/0")  # both, agreeing: as a paired benchmark sets them
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings().feature_cache == "redis://new:6379/0"


def test_the_old_name_of_fast_paths_still_works_for_a_release_with_a_warning(clean_env, tmp_path):
    path = tmp_path / "old.toml"
    path.write_text("compiled_ingest = false\n")
    with pytest.warns(FutureWarning, match=r"compiled_ingest \(VAHINI_COMPILED_INGEST\) is now fast_paths"):
        assert load_settings(str(path)).fast_paths is False
    clean_env.setenv("VAHINI_FAST_PATHS", "true")  # the new name wins, and the warning says so
    with pytest.warns(FutureWarning, match="Using fast_paths = True"):
        assert load_settings(str(path)).fast_paths is True
    assert load_settings().fast_paths is True and Settings(fast_paths=False).fast_paths is False


def test_mistakes_are_rejected(clean_env, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_settings(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nbatch_sise = 10\n")
    with pytest.raises(ValidationError, match="batch_sise"):
        load_settings(str(bad))
    clean_env.setenv("VAHINI_INGEST__BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        load_settings()


def test_an_unknown_backend_scheme_is_named(clean_env, capsys):
    with pytest.raises(wiring.UnknownBackend, match="feature_store='mongo://x': scheme must be one of"):
        wiring.feature_store(Settings(feature_store="mongo://x"))
    clean_env.setenv("VAHINI_CONFIG_STORE", "etcd://x")
    assert main(["apply", "vahini/samples/registry"]) == 1
    assert "scheme must be one of file://, zk://" in capsys.readouterr().err


def test_an_unreachable_service_is_a_clear_error_not_a_traceback(clean_env, capsys):
    clean_env.setenv("VAHINI_CONFIG_STORE", "zk://127.0.0.1:1/vahini")
    assert main(["get", "--entity", "user", "--keys", "u1", "--groups", "user_profile"]) == 3
    assert "cannot connect to ZooKeeper at 127.0.0.1:1" in capsys.readouterr().err


def test_extra_kafka_properties_reach_the_client_and_a_misspelt_one_is_named(clean_env, capsys, tmp_path):
    from vahini.demo import SAMPLE_REGISTRY

    clean_env.setenv("VAHINI_CONFIG_STORE", f"file://{tmp_path}/config")
    assert main(["apply", str(SAMPLE_REGISTRY)]) == 0
    clean_env.setenv("VAHINI_EVENT_LOG", "kafka://127.0.0.1:9092")
    clean_env.setenv("VAHINI_KAFKA", '{"security.protocoll": "SSL"}')
    assert main(["replay", "--topic", "t", "--from", "earliest"]) == 1
    assert 'invalid Kafka client settings: No such configuration property: "security.protocoll"' in \
        capsys.readouterr().err


def test_cassandra_password_is_kept_secret(clean_env):
    clean_env.setenv("VAHINI_CASSANDRA__USERNAME", "vahini")
    clean_env.setenv("VAHINI_CASSANDRA__PASSWORD", "s3cret")
    s = load_settings()
    assert s.cassandra.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_kafka_secrets_are_kept_secret_and_reach_the_client_revealed(clean_env, capsys):
    clean_env.setenv("VAHINI_KAFKA", '{"sasl.username": "vahini", "sasl.password": "hunter2", '
                                     '"ssl.key.password": "k3y", "linger.ms": 5}')
    s = load_settings()
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "hunter2" not in shown and "k3y" not in shown
    assert s.kafka["sasl.username"] == "vahini" and s.kafka["linger.ms"] == 5
    assert s.kafka_properties() == {"sasl.username": "vahini", "sasl.password": "hunter2",
                                    "ssl.key.password": "k3y", "linger.ms": 5}
    assert main(["--log-level", "DEBUG", "apply", "--dry-run", "vahini/samples/registry"]) == 0
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
