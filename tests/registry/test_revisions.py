"""Registry revisions and `vahini registry show|diff`, on each config store (a directory
and ZooKeeper): each publish that changes something gets the next revision, kept."""

import json
import shutil

from vahini.cli import main
from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import publish, revisions

from tests.registry.test_apply import GOOD_ENTITIES, GOOD_GROUP, write


def cli(monkeypatch, settings, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("VAHINI_CONFIG_STORE", settings.config_store)
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_each_changing_publish_gets_the_next_revision_and_keeps_it(settings, tmp_path):
    from vahini import wiring

    store = wiring.config_store(settings)
    try:
        d = write(tmp_path, entities=GOOD_ENTITIES, groups=GOOD_GROUP)
        assert publish.apply(d, store).registry.revision == 1
        assert publish.apply(d, store).registry.revision == 1  # nothing changed: no new revision
        (d / "groups.yaml").write_text(GOOD_GROUP.replace("version: 1", "version: 2")
                                       + "      - {name: city, type: string, default: x}\n")
        assert publish.apply(d, store).registry.revision == 2
        assert publish.read_published(store).revision == 2
        first, second = revisions.read(store, 1), revisions.read(store, 2)
        assert [f.name for f in first.groups["profile"].features] == ["age", "emb"]
        assert [f.name for f in second.groups["profile"].features] == ["age", "emb", "city"]
        assert revisions.differences(first, second) == [
            "feature group 'profile' goes from version 1 to 2", "feature 'profile.city' is added (string)"]
        assert revisions.differences(second, second) == []
    finally:
        store.close()


def test_registry_show_and_diff(settings, tmp_path, monkeypatch, capsys):
    reg = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, reg)
    assert cli(monkeypatch, settings, capsys, "apply", str(reg))[1].rstrip().endswith("2 models, revision 1")
    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "show")
    assert code == 0 and out.startswith("revision 1: 3 entities, 8 feature groups, 2 models")
    assert "  user_category  keys: user_id, category_id" in out
    assert "  home_ranker_scored  v1  context: user_id, product_ids  rows: product_ids  4 columns  scored by ctr, rank" \
        in out

    groups = reg / "feature_groups.yaml"
    text = groups.read_text()
    assert "      - {name: city, type: string, default: unknown}\n" in text
    groups.write_text(text.replace("      - {name: city, type: string, default: unknown}\n",
                                   "      - {name: city, type: string, default: unknown}\n"
                                   "      - {name: tier, type: string, default: none}\n").replace(
        "name: user_profile\n    entity: user\n    version: 1", "name: user_profile\n    entity: user\n    version: 2"))
    assert cli(monkeypatch, settings, capsys, "apply", str(reg))[1].rstrip().endswith("revision 2")

    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "show", "user_profile")
    assert code == 0 and out.splitlines()[0] == ("feature group user_profile, version 2 "
                                                 "(earlier versions still readable: 1)")
    assert any(line.split() == ["tier", "string", "default:", '"none"'] for line in out.splitlines())
    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "show", "user_profile", "--revision", "1")
    assert "version 1" in out.splitlines()[0] and "tier" not in out
    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "show", "home_ranker")
    assert "    user_cat         user_category_affinity           keys: user_id=context.user_id, " \
           "category_id=product.category_id" in out

    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "diff", "1", "--json")
    assert code == 0 and json.loads(out) == {"from": 1, "to": 2, "changes": [
        "feature group 'user_profile' goes from version 1 to 2", "feature 'user_profile.tier' is added (string)"]}
    code, out, _ = cli(monkeypatch, settings, capsys, "registry", "diff", "2", "1")
    assert out.splitlines() == [
        "revision 2 -> 1: 2 change(s)", "  feature group 'user_profile' goes from version 2 to 1",
        "  feature 'user_profile.tier' is removed: reads no longer return it, and events that still carry it are "
        "dead-lettered"]

    code, _, err = cli(monkeypatch, settings, capsys, "registry", "diff", "7")
    assert code != 0 and "no registry revision 7: revisions kept are 1 to 2" in err
    code, _, err = cli(monkeypatch, settings, capsys, "registry", "show", "nope")
    assert code != 0 and "no feature group or model 'nope' in revision 2; published: home_ranker," in err


def test_registry_show_before_any_publish(settings, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, settings, capsys, "registry", "show")
    assert code != 0 and "nothing is published to" in err and "vahini apply DIR" in err
