"""The generated messages and service stubs the wrappers use, under short names."""

from __future__ import annotations

from typing import Any

from llmserve.admin.v1 import admin_service_pb2 as admin_pb
from llmserve.admin.v1 import admin_service_pb2_grpc as admin_grpc
from llmserve.chat.v1 import chat_service_pb2 as chat_pb
from llmserve.chat.v1 import chat_service_pb2_grpc as chat_grpc
from llmserve.common.v1 import common_pb2
from llmserve.generation.v1 import generation_service_pb2 as gen_pb
from llmserve.generation.v1 import generation_service_pb2_grpc as gen_grpc
from llmserve.lut.v1 import lut_service_pb2 as lut_pb
from llmserve.lut.v1 import lut_service_pb2_grpc as lut_grpc
from llmserve.sae.v1 import sae_service_pb2 as sae_pb
from llmserve.sae.v1 import sae_service_pb2_grpc as sae_grpc
from llmserve.server.v1 import server_service_pb2 as server_pb
from llmserve.server.v1 import server_service_pb2_grpc as server_grpc
from llmserve.specialist.v1 import specialist_service_pb2 as spec_pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as spec_grpc


class Stubs:
    """The typed service stubs on one channel, for the calls the wrapper does not cover."""

    def __init__(self, channel: Any) -> None:
        self.generation = gen_grpc.GenerationServiceStub(channel)
        self.lut = lut_grpc.LutServiceStub(channel)
        self.chat = chat_grpc.ChatServiceStub(channel)
        self.sae = sae_grpc.SaeTrainingServiceStub(channel)
        self.specialist = spec_grpc.SpecialistServiceStub(channel)
        self.server = server_grpc.ServerServiceStub(channel)
        self.admin = admin_grpc.AdminServiceStub(channel)


UPLOAD_CHUNK_BYTES = 1 << 20
"""Bytes per message of a corpus upload (well under gRPC's 4 MiB message limit)."""


def sae_upload(filename: str, data: bytes) -> list[sae_pb.UploadCorpusRequest]:
    chunks = [data[i:i + UPLOAD_CHUNK_BYTES] for i in range(0, len(data), UPLOAD_CHUNK_BYTES)]
    return [sae_pb.UploadCorpusRequest(filename=filename), *(sae_pb.UploadCorpusRequest(chunk=c) for c in chunks)]


def specialist_upload(name: str, file_name: str, data: bytes, overwrite: bool
                      ) -> list[spec_pb.UploadSpecialistCorpusRequest]:
    from google.api import httpbody_pb2

    chunks = [data[i:i + UPLOAD_CHUNK_BYTES] for i in range(0, len(data), UPLOAD_CHUNK_BYTES)] or [b""]
    first, *rest = chunks
    return [spec_pb.UploadSpecialistCorpusRequest(name=name, file_name=file_name, overwrite=overwrite,
                                                  chunk=httpbody_pb2.HttpBody(data=first)),
            *(spec_pb.UploadSpecialistCorpusRequest(chunk=httpbody_pb2.HttpBody(data=c)) for c in rest)]


__all__ = [
    "Stubs",
    "admin_pb",
    "chat_pb",
    "common_pb2",
    "gen_pb",
    "lut_pb",
    "sae_pb",
    "sae_upload",
    "server_pb",
    "spec_pb",
    "specialist_upload",
]
