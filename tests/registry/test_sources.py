"""The published registry records where each definition came from, file and line, for
the console; a registry published before that reads as having none, and moving a
definition within its file is no change of content (no new revision)."""

from __future__ import annotations

import shutil

from vahini.demo import SAMPLE_REGISTRY
from vahini.registry import revisions
from vahini.registry.loader import load_registry
from vahini.registry.model import Registry


def test_each_definition_is_recorded_with_its_file_and_line_and_survives_publishing(tmp_path):
    registry = load_registry(SAMPLE_REGISTRY)
    models = (SAMPLE_REGISTRY / "models.yaml").read_text().splitlines()
    line = int(registry.source_of("model", "home_ranker").split(":")[1])
    assert registry.source_of("model", "home_ranker").startswith("models.yaml:")
    assert models[line - 1].strip() == "- name: home_ranker"
    groups = (SAMPLE_REGISTRY / "feature_groups.yaml").read_text().splitlines()
    where = registry.source_of("feature", "product_core.price")
    assert where.startswith("feature_groups.yaml:") and "price" in groups[int(where.split(":")[1]) - 1]
    assert registry.source_of("entity", "user").startswith("entities.yaml:")
    again = Registry.from_json_dict(registry.to_json_dict())
    assert again.sources == registry.sources
    legacy = registry.to_json_dict()
    del legacy["sources"]
    assert Registry.from_json_dict(legacy).source_of("model", "home_ranker") == ""


def test_moving_a_definition_down_its_file_is_not_a_change_of_content(tmp_path):
    moved = tmp_path / "registry"
    shutil.copytree(SAMPLE_REGISTRY, moved)
    models = moved / "models.yaml"
    models.write_text("# a comment that moves every model down a line\n" + models.read_text())
    before, after = load_registry(SAMPLE_REGISTRY), load_registry(moved)
    assert before.source_of("model", "home_ranker") != after.source_of("model", "home_ranker")
    assert revisions.same_content(before, after)
