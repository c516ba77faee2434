"""SaeTrainingService: its contract is served; its implementation is pending
(sparse-autoencoder training jobs have not landed)."""

from __future__ import annotations

from llmserve.sae.v1 import sae_service_pb2 as pb
from llmserve.sae.v1 import sae_service_pb2_grpc as pb_grpc
from server.services.binding import ServiceBinding, full_name
from server.services.unimplemented import unimplemented_servicer

SaeTrainingServicer = unimplemented_servicer(
    pb_grpc.SaeTrainingServiceServicer, pb.DESCRIPTOR.services_by_name["SaeTrainingService"],
    "sparse-autoencoder training jobs have not landed")

BINDING = ServiceBinding(full_name(pb, "SaeTrainingService"), pb_grpc.add_SaeTrainingServiceServicer_to_server,
                         lambda ctx: SaeTrainingServicer(), implemented=False)
