"""SpecialistService: specialist catalogue, corpus upload, mixture generation (unary and
streaming), gate inspection and training jobs. Thin: proto -> domain.specialist -> proto."""

from __future__ import annotations

import json
import logging
from typing import AsyncIterator

from google.api import httpbody_pb2

from llmserve.common.v1 import common_pb2
from llmserve.specialist.v1 import specialist_service_pb2 as pb
from llmserve.specialist.v1 import specialist_service_pb2_grpc as pb_grpc
from domain.jobs import JobState
from domain.specialist.mixture import Routing
from domain.specialist.service import SpecialistService, SpecialistView, State, TrainingJob, Trigger
from models.errors import InvalidArgument, ResourceExhausted
from server.errors import servicer
from server.services.binding import ServiceBinding, full_name
from server.services.convert import FINISH_REASONS, enum_choice, collect, sampling_overrides, token_stream, usage
from server.streams import watch_stream

log = logging.getLogger(__name__)

STATES = {State.UPLOADED: pb.SPECIALIST_STATE_UPLOADED, State.TRAINING: pb.SPECIALIST_STATE_TRAINING,
          State.READY: pb.SPECIALIST_STATE_READY, State.FAILED: pb.SPECIALIST_STATE_FAILED}
JOB_STATES = {JobState.QUEUED: common_pb2.JOB_STATE_QUEUED, JobState.RUNNING: common_pb2.JOB_STATE_RUNNING,
              JobState.COMPLETED: common_pb2.JOB_STATE_COMPLETED, JobState.FAILED: common_pb2.JOB_STATE_FAILED,
              JobState.CANCELLED: common_pb2.JOB_STATE_CANCELLED}
TRIGGERS = {Trigger.ADD: pb.TRAINING_JOB_TRIGGER_ADD_SPECIALIST, Trigger.DELETE: pb.TRAINING_JOB_TRIGGER_DELETE_SPECIALIST,
            Trigger.MANUAL: pb.TRAINING_JOB_TRIGGER_MANUAL, Trigger.STARTUP: pb.TRAINING_JOB_TRIGGER_STARTUP}
ROUTING = {pb.ROUTING_MODE_UNSPECIFIED: Routing.SOFT, pb.ROUTING_MODE_SOFT: Routing.SOFT,
           pb.ROUTING_MODE_HARD: Routing.HARD}
STATE_FILTER = {v: k for k, v in JOB_STATES.items()}


def _specialist(view: SpecialistView) -> pb.Specialist:
    m = view.metrics
    metrics = pb.SpecialistMetrics(train_tokens=int(m.get("train_tokens", 0)),
                                   heldout_tokens=int(m.get("heldout_tokens", 0)))
    if "heldout_perplexity" in m:
        metrics.heldout_perplexity, metrics.heldout_loss = m["heldout_perplexity"], m["heldout_loss"]
    msg = pb.Specialist(name=view.name, state=STATES[view.state], corpus_size_bytes=view.corpus_bytes,
                        corpus_file_count=view.corpus_files, metrics=metrics, training_job_id=view.training_job_id)
    msg.create_time.FromDatetime(view.created_at)
    msg.update_time.FromDatetime(view.updated_at)
    if view.train_time is not None:
        msg.train_time.FromDatetime(view.train_time)
    return msg


def _job(job: TrainingJob) -> pb.TrainingJob:
    record = job.record
    msg = pb.TrainingJob(
        job_id=record.job_id, state=JOB_STATES[record.state], trigger=TRIGGERS[job.trigger],
        specialists=job.specialists, progress=record.progress, step=job.step, total_steps=job.total_steps,
        message=job.message)
    if job.loss is not None:
        msg.loss = job.loss
    msg.create_time.FromDatetime(record.created_at)
    if record.started_at:
        msg.start_time.FromDatetime(record.started_at)
    if record.completed_at:
        msg.end_time.FromDatetime(record.completed_at)
    return msg


def _progress(training_job: TrainingJob) -> pb.TrainingJobProgress:
    job = _job(training_job)
    msg = pb.TrainingJobProgress(job_id=job.job_id, state=job.state, progress=job.progress, step=job.step,
                                 total_steps=job.total_steps, message=job.message)
    if job.HasField("loss"):
        msg.loss = job.loss
    return msg


@servicer
class SpecialistServicer(pb_grpc.SpecialistServiceServicer):
    def __init__(self, service: SpecialistService) -> None:
        self._service = service

    async def ListSpecialists(self, request, context) -> pb.ListSpecialistsResponse:
        return pb.ListSpecialistsResponse(specialists=[_specialist(v) for v in await self._service.list()])

    async def ListSpecialistNames(self, request, context) -> pb.ListSpecialistNamesResponse:
        names = await self._service.names()
        body = httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(names).encode())
        return pb.ListSpecialistNamesResponse(body=body, names=names)

    async def GetSpecialist(self, request, context) -> pb.GetSpecialistResponse:
        return pb.GetSpecialistResponse(specialist=_specialist(await self._service.get(request.name)))

    async def AddSpecialist(self, request, context) -> pb.AddSpecialistResponse:
        names, job, view = await self._service.add(request.name)
        return pb.AddSpecialistResponse(
            message=f"Specialist '{request.name}' added; training job {job.record.job_id} started.",
            specialists=names, training_job_id=job.record.job_id, specialist=_specialist(view))

    async def UploadSpecialistCorpus(self, request_iterator, context) -> pb.UploadSpecialistCorpusResponse:
        name = file_name = ""
        overwrite, first = False, True
        data = bytearray()
        limit = self._service.config.max_corpus_bytes
        async for message in request_iterator:
            if first:
                name, file_name, overwrite, first = message.name, message.file_name, message.overwrite, False
            elif (message.name and message.name != name) or (message.file_name and message.file_name != file_name):
                raise InvalidArgument("name", "later messages must leave name and file_name empty or unchanged")
            data += message.chunk.data
            if len(data) > limit:
                raise ResourceExhausted(f"corpus file is larger than the limit of {limit} bytes", 0.0, "corpus size")
        if first:
            raise InvalidArgument("name", "the upload stream carried no message")
        _, view = await self._service.upload(name, file_name, bytes(data), overwrite)
        return pb.UploadSpecialistCorpusResponse(name=name, file_name=file_name, size_bytes=len(data),
                                                 specialist=_specialist(view))

    async def DeleteSpecialist(self, request, context) -> pb.DeleteSpecialistResponse:
        names, job = await self._service.delete(request.name)
        message = f"Specialist '{request.name}' has been deleted"
        message += f"; training job {job.record.job_id} started." if job else "."
        return pb.DeleteSpecialistResponse(message=message, specialists=names,
                                           training_job_id=job.record.job_id if job else "")

    async def _prepare(self, request):
        return await self._service.prepare(request.prompt, sampling_overrides(request),
                                           enum_choice(ROUTING, request, "routing_mode"),
                                           request.force_specialist)

    async def Generate(self, request, context) -> pb.GenerateResponse:
        prepared, experts = await self._prepare(request)
        done = await collect(prepared.events())
        return pb.GenerateResponse(prompt=request.prompt, completion=done.text, full_text=request.prompt + done.text,
                                   specialists=experts, finish_reason=FINISH_REASONS[done.reason], usage=usage(done))

    async def StreamGenerate(self, request, context) -> AsyncIterator[pb.StreamGenerateResponse]:
        prepared, _ = await self._prepare(request)
        async for message in token_stream(prepared.events(), pb.StreamGenerateResponse):
            yield message

    async def InspectGates(self, request, context) -> pb.InspectGatesResponse:
        per_token = request.granularity == pb.GATE_GRANULARITY_PER_TOKEN
        found = await self._service.inspect(request.prompt, per_token)
        layers = []
        for i, layer in enumerate(found.weights):
            msg = pb.LayerGates(layer=i, weights=layer.mean(dim=0).tolist())
            if per_token:
                msg.token_weights.extend(pb.GateWeights(weights=t.tolist()) for t in layer)
            layers.append(msg)
        return pb.InspectGatesResponse(experts=found.experts, tokens=found.tokens, token_ids=found.token_ids,
                                       layers=layers)

    async def CreateTrainingJob(self, request, context) -> pb.CreateTrainingJobResponse:
        steps = request.steps if request.HasField("steps") else None
        return pb.CreateTrainingJobResponse(job=_job(await self._service.create_job(steps)))

    async def GetTrainingJob(self, request, context) -> pb.GetTrainingJobResponse:
        return pb.GetTrainingJobResponse(job=_job(await self._service.get_job(request.job_id)))

    async def ListTrainingJobs(self, request, context) -> pb.ListTrainingJobsResponse:
        state = enum_choice(STATE_FILTER, request, "state") if request.state else None
        page = await self._service.list_jobs(state, request.page_size, request.page_token)
        return pb.ListTrainingJobsResponse(jobs=[_job(r) for r in page.items], next_page_token=page.next_page_token)

    async def CancelTrainingJob(self, request, context) -> pb.CancelTrainingJobResponse:
        return pb.CancelTrainingJobResponse(job=_job(await self._service.cancel_job(request.job_id)))

    async def WatchTrainingJob(self, request, context) -> AsyncIterator[pb.WatchTrainingJobResponse]:
        async for message in watch_stream(self._service.watch_job(request.job_id),
                                          lambda job: job.record.state.terminal, pb.WatchTrainingJobResponse,
                                          _progress, _job):
            yield message


BINDING = ServiceBinding(full_name(pb, "SpecialistService"), pb_grpc.add_SpecialistServiceServicer_to_server,
                         lambda ctx: SpecialistServicer(ctx.features.specialists))
