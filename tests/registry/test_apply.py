"""`vahini apply`: validation with file:line errors, atomic publish, live pick-up."""

import shutil
import textwrap
import threading
from pathlib import Path

import pytest

from vahini import wiring
from vahini.cli import main
from vahini.demo import SAMPLE_REGISTRY
from vahini.errors import ConfigError
from vahini.registry import publish
from vahini.registry.loader import load_registry
from vahini.settings import Settings

GOOD_ENTITIES = """\
entities:
  - name: user
    keys: [user_id]
  - name: product
    keys: [product_id]
"""
GOOD_GROUP = """\
feature_groups:
  - name: profile
    entity: user
    version: 1
    ttl_s: 60
    features:
      - {name: age, type: int, default: 0}
      - {name: emb, type: vector, dim: 2}
"""


def write(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "registry"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.yaml").write_text(textwrap.dedent(text))
    return d


def problems(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_registry(directory)
    return [str(p) for p in info.value.problems]


def test_sample_registry_is_valid():
    registry = load_registry(SAMPLE_REGISTRY)
    assert set(registry.groups) >= {"user_profile", "product_core", "user_category_affinity"}
    assert registry.models["home_ranker"].lookups[-1].keys == (("user_id", "context.user_id"),
                                                                ("category_id", "product.category_id"))


BAD_CONFIGS = {
    "yaml syntax": ({"groups": "feature_groups:\n  - name: x\n    entity: [user\n"}, "groups.yaml:4", "YAML syntax error"),
    "duplicate yaml key": ({"entities": "entities:\n  - name: user\n    keys: [a]\n    keys: [b]\n"},
                           "entities.yaml:4", "duplicate key 'keys' (first at line 3)"),
    "unknown section": ({"entities": GOOD_ENTITIES + "featuregroups: []\n"}, "entities.yaml:6",
                        "unknown section 'featuregroups'"),
    "unknown field": ({"entities": GOOD_ENTITIES + "  - name: shop\n    keys: [shop_id]\n    key_type: str\n"},
                      "entities.yaml:8", "unknown field 'key_type'"),
    "missing field": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace("    version: 1\n", "")},
                      "groups.yaml:2", "missing required field 'version'"),
    "bad name": ({"entities": GOOD_ENTITIES.replace("name: product", "name: Product-X")}, "entities.yaml:4",
                 "entity name 'Product-X' is not a valid name"),
    "entity without keys": ({"entities": GOOD_ENTITIES.replace("[product_id]", "[]")}, "entities.yaml:5",
                            "needs a non-empty list of key columns"),
    "duplicate entity": ({"entities": GOOD_ENTITIES, "more": "entities:\n  - name: user\n    keys: [uid]\n"},
                         "more.yaml:2", "duplicate entity 'user' (first defined at"),
    "unknown entity": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace("entity: user", "entity: usr")},
                       "groups.yaml:3", "references unknown entity 'usr'"),
    "unknown type": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace("type: int", "type: integer")},
                     "groups.yaml:7", "unknown type 'integer'"),
    "default of wrong type": ({"entities": GOOD_ENTITIES,
                               "groups": GOOD_GROUP.replace("default: 0}", "default: zero}")},
                              "groups.yaml:7", "default 'zero' is not an integer"),
    "vector without dim": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace(", dim: 2", "")},
                           "groups.yaml:8", "vector feature 'emb' dim must be an integer >= 1"),
    "vector default of wrong length": ({"entities": GOOD_ENTITIES,
                                        "groups": GOOD_GROUP.replace("dim: 2}", "dim: 2, default: [1]}")},
                                       "groups.yaml:8", "default must be a list of 2 numbers"),
    "negative ttl": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace("ttl_s: 60", "ttl_s: -5")},
                     "groups.yaml:5", "ttl_s must be an integer >= 0"),
    "duplicate feature": ({"entities": GOOD_ENTITIES,
                           "groups": GOOD_GROUP + "      - {name: age, type: float}\n"},
                          "groups.yaml:9", "duplicate feature 'age' in group 'profile' (first at line 7)"),
    "int default out of range": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP.replace(
        "type: int, default: 0", "type: int32, default: 3000000000")}, "groups.yaml:7", "out of range for int32"),
    "model with unknown group": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP, "models": """\
        models:
          - name: ranker
            context: [user_id, product_ids]
            rows: product_ids
            lookups:
              - {name: u, group: profle, keys: {user_id: context.user_id}}
            features: [u.age]
        """}, "models.yaml:6", "references unknown group 'profle'"),
    "model key from unknown context": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP, "models": """\
        models:
          - name: ranker
            context: [user_id, product_ids]
            rows: product_ids
            lookups:
              - name: u
                group: profile
                keys: {user_id: context.uid}
            features: [u.age, u.missing]
        """}, "models.yaml:8", "context has no 'uid'"),
    "model output of unknown feature": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP, "models": """\
        models:
          - name: ranker
            context: [user_id, product_ids]
            rows: product_ids
            lookups:
              - {name: u, group: profile, keys: {user_id: context.user_id}}
            features:
              - u.age
              - u.height
        """}, "models.yaml:9", "group 'profile' has no feature 'height'"),
    "model keys not matching the entity": ({"entities": GOOD_ENTITIES, "groups": GOOD_GROUP, "models": """\
        models:
          - name: ranker
            context: [user_id, product_ids]
            rows: product_ids
            lookups:
              - {name: u, group: profile, keys: {product_id: row}}
            features: [u.age]
        """}, "models.yaml:6", "must be exactly the key columns of entity 'user'"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_bad_config_is_rejected_with_file_line_and_reason(tmp_path, case):
    files, location, message = BAD_CONFIGS[case]
    found = problems(write(tmp_path, **files))
    assert any(p.split(": ", 1)[0].endswith(location) and message in p for p in found), found


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP.replace("entity: user", "entity: usr")
              .replace("type: int", "type: integer").replace("ttl_s: 60", "ttl_s: -1"))
    assert len(problems(d)) >= 2


def test_nothing_is_published_when_anything_is_wrong(tmp_path, settings):
    store = wiring.config_store(settings)
    good = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP)
    publish.apply(good, store)
    before = store.get(publish.REGISTRY_KEY)
    (good / "extra.yaml").write_text("feature_groups:\n  - name: stats\n    entity: nobody\n    version: 1\n"
                                     "    features: [{name: a, type: int}]\n")
    with pytest.raises(ConfigError):
        publish.apply(good, store)
    assert store.get(publish.REGISTRY_KEY) == before
    store.close()


def test_changing_a_group_requires_a_version_bump_and_keeps_the_old_layout(tmp_path, settings):
    store = wiring.config_store(settings)
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP)
    publish.apply(d, store)
    write(tmp_path, groups=GOOD_GROUP + "      - {name: city, type: string}\n")
    with pytest.raises(ConfigError, match="changed its features but kept version 1"):
        publish.apply(d, store)
    write(tmp_path, groups=GOOD_GROUP.replace("version: 1", "version: 2") + "      - {name: city, type: string}\n")
    registry = publish.apply(d, store).registry
    assert registry.groups["profile"].version == 2
    assert [f.name for f in registry.features_of("profile", 1)] == ["age", "emb"]
    store.close()


def test_running_services_pick_up_a_publish_without_restart(tmp_path, settings):
    store = wiring.config_store(settings)
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP)
    publish.apply(d, store)
    changed = threading.Event()
    follower = publish.RegistryFollower(wiring.config_store(settings), on_change=lambda r: changed.set())
    assert set(follower.current.groups) == {"profile"}
    write(tmp_path, more="feature_groups:\n  - name: stats\n    entity: product\n    version: 1\n"
                         "    features: [{name: views, type: int}]\n")
    publish.apply(d, store)
    assert changed.wait(10), "registry change not seen within 10 s"
    assert set(follower.current.groups) == {"profile", "stats"}
    follower.close()
    store.close()


def test_cli_apply_prints_problems_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAHINI_CONFIG_STORE", f"file://{tmp_path}/config")
    bad = write(tmp_path, entities=GOOD_ENTITIES.replace("[user_id]", "[]"))
    assert main(["apply", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "nothing published" in err and "entities.yaml:3:" in err
    good = tmp_path / "good"
    shutil.copytree(SAMPLE_REGISTRY, good)
    assert main(["apply", str(good)]) == 0
    assert "published" in capsys.readouterr().out


def test_overlapping_applies_cannot_drop_each_others_history(tmp_path, settings, monkeypatch):
    from vahini.ports.config_store import ConcurrentModification

    store = wiring.config_store(settings)
    slow = write(tmp_path / "slow", entities=GOOD_ENTITIES, groups=GOOD_GROUP)
    fast = write(tmp_path / "fast", entities=GOOD_ENTITIES,
                 groups=GOOD_GROUP.replace("version: 1", "version: 2") + "      - {name: city, type: string}\n")
    publish.apply(slow, store)
    real_prepare = publish.prepare

    def prepare_while_another_apply_lands(directory, published):
        monkeypatch.setattr(publish, "prepare", real_prepare)
        publish.apply(fast, store)  # lands between the slow apply's read and its write
        return real_prepare(directory, published)

    monkeypatch.setattr(publish, "prepare", prepare_while_another_apply_lands)
    with pytest.raises(ConcurrentModification):
        publish.apply(slow, store)
    published = publish.read_published(store)
    assert published.groups["profile"].version == 2
    assert [f.name for f in published.features_of("profile", 1)] == ["age", "emb"]
    store.close()


def _retyped(feature_line: str, version: int = 2) -> str:
    return GOOD_GROUP.replace("version: 1", f"version: {version}").replace(
        "      - {name: age, type: int, default: 0}\n", feature_line)


def _published_with_int32_age(tmp_path, store) -> Path:
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP.replace("type: int,", "type: int32,"))
    publish.apply(d, store)
    return d


@pytest.mark.parametrize("new_type, default", [("int32", "0"), ("string", "x"), ("bool", "false"), ("float", "0.0"),
                                               ("vector, dim: 1", "[0.0]")])
def test_a_type_change_that_would_misread_stored_values_is_rejected_with_file_and_line(tmp_path, settings, new_type,
                                                                                       default):
    store = wiring.config_store(settings)
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP)
    publish.apply(d, store)
    before = store.get(publish.REGISTRY_KEY)
    write(tmp_path, groups=_retyped(f"      - {{name: age, type: {new_type}, default: {default}}}\n"))
    with pytest.raises(ConfigError) as info:
        publish.apply(d, store)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{d / 'groups.yaml'}:7:")  # the line of the feature, not of the group
    assert "'profile.age'" in problem and "v1 (int)" in problem and "new name" in problem
    assert store.get(publish.REGISTRY_KEY) == before
    store.close()


def test_a_type_change_is_checked_against_every_stored_version_not_only_the_last(tmp_path, settings):
    store = wiring.config_store(settings)
    d = _published_with_int32_age(tmp_path, store)
    write(tmp_path, groups=_retyped("      - {name: age_years, type: int, default: 0}\n"))
    publish.apply(d, store)  # v2 drops 'age'; values stored under v1 still carry it
    write(tmp_path, groups=_retyped("      - {name: age, type: string, default: x}\n", version=3))
    with pytest.raises(ConfigError, match=r"'profile.age' changes type to string, but values stored under v1 \(int32\)"):
        publish.apply(d, store)
    store.close()


def test_widening_and_renaming_publish_and_the_plan_says_what_changes(tmp_path, settings):
    store = wiring.config_store(settings)
    d = _published_with_int32_age(tmp_path, store)
    write(tmp_path, groups=_retyped("      - {name: age, type: int, default: 0}\n      - {name: city, type: string}\n"))
    plan = publish.apply(d, store)
    assert {(c.kind, c.feature) for c in plan.changes} == {("version", None), ("added", "city"), ("widened", "age")}
    assert [c.feature for c in plan.warnings] == ["age"]
    write(tmp_path, groups=_retyped("      - {name: age_s, type: string, default: x}\n", version=3))
    plan = publish.apply(d, store)  # a new name is a new feature: allowed, and the removals are warned about
    assert {(c.kind, c.feature) for c in plan.warnings} == {("removed", "age"), ("removed", "city")}
    assert plan.registry.groups["profile"].feature("age_s").type == "string"
    store.close()


def test_cli_apply_prints_the_plan_and_warns_about_removed_groups(tmp_path, capsys, monkeypatch):
    env_dir = tmp_path / "cfg"
    monkeypatch.setenv("VAHINI_CONFIG_STORE", f"file://{env_dir}")
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP,
              more="feature_groups:\n  - name: stats\n    entity: product\n    version: 1\n"
                   "    features: [{name: views, type: int}]\n")
    args = ["apply", str(d)]
    assert main(args) == 0
    assert "feature group 'stats' is added" in capsys.readouterr().out
    (d / "more.yaml").unlink()
    assert main(["apply", "--dry-run", str(d)]) == 0
    out = capsys.readouterr()
    assert "warning: feature group 'stats' is removed" in out.err and "dry run, not published" in out.out
    assert main(args) == 0
    assert "warning: feature group 'stats' is removed" in capsys.readouterr().err
    assert set(publish.read_published(wiring.config_store(Settings(config_store=f"file://{env_dir}"))).groups) == {
        "profile"}


@pytest.mark.parametrize("feature, entity, message", [
    ("{name: clicks_1week, type: int32}", "user", "must be a windowed count named <clicks|orders|wishlists>_<N><m|h|d>"),
    ("{name: clicks_1h, type: float}", "user", "of type int or int32"),
    ("{name: clicks_1h, type: int32}", "product", "needs an entity keyed by [user_id] or [user_id, category_id]"),
])
def test_interaction_window_groups_are_validated_with_file_and_line(tmp_path, feature, entity, message):
    d = write(tmp_path, entities=GOOD_ENTITIES, groups=f"""\
feature_groups:
  - name: windows
    entity: {entity}
    version: 1
    source: interactions
    features:
      - {feature}
""")
    found = problems(d)
    assert any(message in p and "groups.yaml:" in p for p in found), found


def test_a_model_on_outage_policy_is_validated_with_file_and_line(tmp_path):
    models = (SAMPLE_REGISTRY / "models.yaml").read_text().replace("    rows: product_ids",
                                                                   "    rows: product_ids\n    on_outage: shrug")
    d = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, d)
    (d / "models.yaml").write_text(models)
    found = problems(d)
    assert any("models.yaml:" in p and "on_outage 'shrug' must be 'fail' or 'defaults'" in p for p in found), found


@pytest.mark.parametrize("log, message", [
    ("{sample: 1.5}", "log sample 1.5 must be a number from 0 to 1"),
    ("{sample: yes}", "log sample True must be a number from 0 to 1"),
    ("{rate: 0.1}", "is missing required field 'sample'"),
    ("0.1", "log must be a mapping"),
])
def test_a_model_log_sample_is_validated_with_file_and_line(tmp_path, log, message):
    models = (SAMPLE_REGISTRY / "models.yaml").read_text().replace("  - name: home_ranker\n",
                                                                   f"  - name: home_ranker\n    log: {log}\n", 1)
    d = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, d)
    (d / "models.yaml").write_text(models)
    found = problems(d)
    assert any("models.yaml:7" in p and message in p for p in found), found


def test_a_model_log_sample_is_published_with_its_graph(tmp_path):
    from vahini.registry.loader import load_registry

    d = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, d)
    (d / "models.yaml").write_text((SAMPLE_REGISTRY / "models.yaml").read_text().replace(
        "  - name: home_ranker\n", "  - name: home_ranker\n    log: {sample: 0.05}\n", 1))
    registry = load_registry(d)
    assert registry.models["home_ranker"].log_sample == 0.05
    assert registry.models["home_ranker_scored"].log_sample == 0.0
