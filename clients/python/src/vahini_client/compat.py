"""Do this client and a server agree on the protos? The client carries code generated
from `schemas/proto`; the server describes its own through gRPC reflection. Needs
`pip install 'vahini-client[check]'` (grpcio-reflection)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from vahini_client._proto import feature_service_pb2, interaction_service_pb2, model_proxy_pb2

CLIENT_FILES = {m.DESCRIPTOR.name: m.DESCRIPTOR.serialized_pb
                for m in (feature_service_pb2, interaction_service_pb2, model_proxy_pb2)}


def server_files(channel, timeout_s: float = 5.0) -> dict[str, bytes]:
    """The server's serialized FileDescriptorProto of each file that defines one of the
    three services, by file name, through reflection."""
    try:
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    except ImportError:
        raise ImportError("checking the server's protos needs grpcio-reflection: "
                          "pip install 'vahini-client[check]'") from None
    from vahini_client.client import SERVICES

    requests = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in SERVICES]
    found = {}
    for reply in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(iter(requests),
                                                                                         timeout=timeout_s):
        if reply.HasField("error_response"):
            raise LookupError(f"the server does not describe {reply.original_request.file_containing_symbol}: "
                              f"{reply.error_response.error_message}")
        for data in reply.file_descriptor_response.file_descriptor_proto:
            name = descriptor_pb2.FileDescriptorProto.FromString(data).name
            found[name] = data
    return found


def mismatches(server: dict[str, bytes], client: dict[str, bytes] = CLIENT_FILES) -> list[str]:
    """The client's proto files that the server has not, or has otherwise."""
    parse = descriptor_pb2.FileDescriptorProto.FromString
    return sorted(name for name, data in client.items() if name not in server or parse(server[name]) != parse(data))
