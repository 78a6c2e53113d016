"""Vahini's contracts: Avro event schemas and the gRPC proto, shipped as package data."""
from pathlib import Path

SCHEMAS_DIR = Path(__file__).resolve().parent
AVRO_DIR = SCHEMAS_DIR / "avro"
PROTO_DIR = SCHEMAS_DIR / "proto"
