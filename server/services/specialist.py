"""SpecialistService: its contract is served; its implementation is pending
(specialist experts and their gated mixture have not landed)."""

from __future__ import annotations

from llmserve.specialist.v1 import specialist_service_pb2 as pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as pb_grpc
from server.services.binding import ServiceBinding, full_name
from server.services.unimplemented import unimplemented_servicer

SpecialistServicer = unimplemented_servicer(
    pb_grpc.SpecialistServiceServicer, pb.DESCRIPTOR.services_by_name["SpecialistService"],
    "specialist experts and their gated mixture have not landed")

BINDING = ServiceBinding(full_name(pb, "SpecialistService"), pb_grpc.add_SpecialistServiceServicer_to_server,
                         lambda ctx: SpecialistServicer(), implemented=False)
