"""The registry: entities, feature groups and model graphs, written as YAML,
validated with file/line errors, and published to the config store."""

from vahini.registry.model import Entity, Feature, FeatureGroup, ModelGraph, Registry

__all__ = ["Entity", "Feature", "FeatureGroup", "ModelGraph", "Registry"]
