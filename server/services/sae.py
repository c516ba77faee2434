"""SaeTrainingService: sparse-autoencoder training jobs (seed 002, miStudioTrain).
Thin: proto -> domain.sae -> proto."""

from __future__ import annotations

from typing import Any, AsyncIterator


from llmserve.common.v1 import common_pb2
from llmserve.sae.v1 import sae_service_pb2 as pb
from llmserve.sae.v1 import sae_service_pb2_grpc as pb_grpc
from domain.jobs import JobState
from domain.sae import hardware
from domain.sae.config import Architecture, TrainParams
from domain.sae.corpus import UploadedCorpora, StoredCorpus, parse_multipart
from domain.sae.jobs import SaeJobs
from domain.sae.model_facts import ModelFacts
from domain.sae.results import SaeJobStatus
from models.devices import host_memory
from models.errors import InvalidArgument, LlmServeError
from server.call_context import tenant
from server.errors import servicer
from server.services.binding import ServiceBinding, ServiceContext, full_name
from server.services.convert import enum_choice, mirror
from server.streams import watch_stream

VERSION = "1.2.0"
STATES = {s: common_pb2.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
ARCHITECTURES = {pb.SAE_ARCHITECTURE_UNSPECIFIED: Architecture.TOPK, pb.SAE_ARCHITECTURE_TOPK: Architecture.TOPK,
                 pb.SAE_ARCHITECTURE_L1: Architecture.L1}
JOB_STATE_FILTER = {v.number: JobState[v.name[len("JOB_STATE_"):]]
                    for v in common_pb2.JobState.DESCRIPTOR.values if v.number}
OPTIONAL = ("layer_number", "sparsity_coeff", "learning_rate", "batch_size", "max_epochs", "min_loss", "gpu_id",
            "max_sequence_length", "k")


def _params(request: pb.CreateTrainingJobRequest) -> TrainParams:
    values: dict[str, Any] = {name: getattr(request, name) for name in OPTIONAL if request.HasField(name)}
    width = request.WhichOneof("sae_width")
    if width:
        values[width] = getattr(request, width)
    if request.gpu_id and not hardware.gpus():
        raise InvalidArgument("gpu_id", "this server has no GPU: leave gpu_id unset (null)")
    return TrainParams(model_name=request.model_name, corpus_file=request.corpus_file,
                       architecture=enum_choice(ARCHITECTURES, request, "architecture"), **values)


def _model_info(facts: ModelFacts, layer: int = 0) -> pb.ModelInfo:
    s = facts.shape
    return pb.ModelInfo(model_name=facts.spec.name, actual_model_loaded=facts.spec.path or facts.spec.description,
                        architecture=s.architecture, total_layers=s.total_layers, selected_layer=layer,
                        hidden_size=s.hidden_size, vocab_size=s.vocab_size, requires_token=False)


def _progress(status: SaeJobStatus) -> pb.TrainingProgress:
    record = status.record
    msg = pb.TrainingProgress(state=STATES[record.state], status=record.state.value, progress=record.progress,
                              epoch=status.epoch, loss=status.loss, tokens_processed=status.tokens_processed,
                              message=record.message)
    if status.eta_s is not None:
        msg.estimated_time_remaining = int(status.eta_s)
    return msg


def _uploaded(stored: StoredCorpus, response: Any) -> Any:
    return response(message="File uploaded successfully", filename=stored.filename, size_bytes=stored.size_bytes,
                    lines_count=stored.lines, path=stored.location)


@servicer
class SaeTrainingServicer(pb_grpc.SaeTrainingServiceServicer):
    def __init__(self, jobs: SaeJobs, corpora: UploadedCorpora) -> None:
        self._jobs = jobs
        self._corpora = corpora

    async def GetGpuStatus(self, request: pb.GetGpuStatusRequest, context) -> pb.GetGpuStatusResponse:
        gpus = hardware.gpus()
        host = host_memory()
        out = pb.GetGpuStatusResponse(cuda_available=bool(gpus), device_count=len(gpus), host_memory=pb.HostMemory(
            total_gb=host.total_bytes / hardware.GIB, free_gb=host.free_bytes / hardware.GIB))
        if gpus:
            import torch

            out.current_device = torch.cuda.current_device()
        for g in gpus:
            out.gpus[str(g.index)].CopyFrom(pb.GpuDeviceStatus(
                name=g.name, memory_total=g.total, memory_allocated=g.allocated, memory_free=g.free,
                free_gb=g.free / hardware.GIB, utilization=g.utilization))
        return out

    async def GetServiceHealth(self, request, context) -> pb.GetServiceHealthResponse:
        gpus = hardware.gpus()
        out = pb.GetServiceHealthResponse(service="miStudioTrain", status="healthy", version=VERSION,
                                          gpu_available=bool(gpus), gpu_count=len(gpus))
        for g in gpus:
            out.memory_status[f"gpu_{g.index}"].CopyFrom(
                pb.GpuMemory(free_gb=g.free / hardware.GIB, total_gb=g.total / hardware.GIB))
        return out

    async def CreateTrainingJob(self, request: pb.CreateTrainingJobRequest, context) -> pb.CreateTrainingJobResponse:
        record, facts = await self._jobs.create(tenant(), _params(request))
        return pb.CreateTrainingJobResponse(
            job_id=record.job_id, status=record.state.value, state=STATES[record.state],
            message=f"Training job started for {request.model_name}", model_name=request.model_name,
            requires_token=False, memory_check="passed", optimizations_applied="")

    async def GetTrainingJob(self, request: pb.GetTrainingJobRequest, context) -> pb.GetTrainingJobResponse:
        status = await self._jobs.get(tenant(), request.job_id)
        record = status.record
        p = _progress(status)
        out = pb.GetTrainingJobResponse(job_id=record.job_id, status=p.status, state=p.state, progress=p.progress,
                                        current_epoch=p.epoch, current_loss=p.loss, message=record.message,
                                        tokens_processed=p.tokens_processed)
        if p.HasField("estimated_time_remaining"):
            out.estimated_time_remaining = p.estimated_time_remaining
        if record.checkpoint_path:
            out.last_checkpoint = record.checkpoint_path
        if status.model_info:
            out.model_info.CopyFrom(mirror(status.model_info, pb.ModelInfo))
        return out

    async def GetTrainingResult(self, request: pb.GetTrainingResultRequest, context) -> pb.GetTrainingResultResponse:
        status, r = await self._jobs.result(tenant(), request.job_id)
        stats, metrics = r.training_stats, r.metrics
        return pb.GetTrainingResultResponse(
            job_id=status.record.job_id, status=status.state.value, state=STATES[status.state],
            model_path=r.model_path, activations_path=r.activations_path, metadata_path=r.metadata_path,
            training_stats=pb.TrainingStats(
                final_loss=stats.final_loss, total_epochs=stats.total_epochs,
                training_time_seconds=stats.training_time_seconds, convergence_epoch=stats.convergence_epoch,
                resumed_from_epoch=stats.resumed_from_epoch, tokens_per_second=stats.tokens_per_second,
                feature_statistics=mirror(stats.feature_statistics, pb.FeatureStatistics)),
            feature_count=r.feature_count, model_info=mirror(r.model_info, pb.ModelInfo),
            ready_for_find_service=True, checkpoints=r.checkpoints,
            metrics=pb.SaeMetrics(
                fvu=metrics.fvu, l0=metrics.l0, dead_fraction=metrics.dead_fraction,
                dead_window_tokens=metrics.dead_window_tokens, dense_fraction=metrics.dense_fraction,
                dense_threshold=metrics.dense_threshold, mean_activation=metrics.mean_activation,
                ce_loss_score=metrics.ce_loss_score, eval_tokens=metrics.eval_tokens,
                loss_curve=[mirror(p, pb.LossCurvePoint) for p in metrics.loss_curve]),
            artifacts=mirror(r.artifacts, pb.SaeArtifacts))

    async def ListTrainingJobs(self, request: pb.ListTrainingJobsRequest, context) -> pb.ListTrainingJobsResponse:
        state = enum_choice(JOB_STATE_FILTER, request, "state") if request.state else None
        page, total = await self._jobs.list(tenant(), state, request.page_size, request.page_token)
        jobs = []
        for status in page.items:
            r = status.record
            item = pb.TrainingJobSummary(job_id=r.job_id, status=r.state.value, state=STATES[r.state],
                                         model_name=status.model_name)
            item.created_at.FromDatetime(r.created_at)
            if r.completed_at:
                item.completed_at.FromDatetime(r.completed_at)
            jobs.append(item)
        return pb.ListTrainingJobsResponse(total_jobs=total, jobs=jobs, next_page_token=page.next_page_token)

    async def CancelTrainingJob(self, request: pb.CancelTrainingJobRequest, context) -> pb.CancelTrainingJobResponse:
        record = (await self._jobs.cancel(tenant(), request.job_id)).record
        message = "Cancelled" if record.state is JobState.CANCELLED else "Cancellation requested"
        return pb.CancelTrainingJobResponse(job_id=record.job_id, status=record.state.value,
                                            state=STATES[record.state], message=message)

    async def WatchTrainingJob(self, request: pb.WatchTrainingJobRequest,
                               context) -> AsyncIterator[pb.WatchTrainingJobResponse]:
        interval = request.min_interval_seconds if request.HasField("min_interval_seconds") else 1.0
        if not 0.1 <= interval <= 60:
            raise InvalidArgument("min_interval_seconds", "must be between 0.1 and 60")
        async for message in watch_stream(self._jobs.watch(tenant(), request.job_id, interval), lambda s: s.state.terminal,
                                          pb.WatchTrainingJobResponse, _progress, _progress):
            yield message

    async def CheckMemory(self, request: pb.CheckMemoryRequest, context) -> pb.CheckMemoryResponse:
        facts = await self._facts(request.model_name)
        est, available = self._jobs.memory_check(facts.shape)
        out = pb.CheckMemoryResponse(
            model_name=request.model_name,
            memory_check=pb.MemoryCheck(
                sufficient=available >= est.required_gb, required_gb=est.required_gb, available_gb=available,
                recommendations=pb.MemoryRecommendations(
                    min_gpu_memory_gb=est.minimum_gb, recommended_gpu_memory_gb=est.recommended_gb,
                    is_large_model=est.is_large, use_4bit_quantization=est.is_large,
                    use_gradient_checkpointing=est.is_large)),
            optimization_suggestions=pb.OptimizationSuggestions(
                batch_size=est.batch_size, max_sequence_length=est.max_sequence_length, enable_4bit=est.is_large,
                enable_checkpointing=est.is_large))
        gpus = hardware.gpus()
        best = max(gpus, key=lambda g: g.free).index if gpus else None
        for g in gpus:
            enough = g.free / hardware.GIB >= est.required_gb
            out.gpu_compatibility[f"gpu_{g.index}"].CopyFrom(
                pb.GpuCompatibility(compatible=True, memory_sufficient=enough, recommended=g.index == best))
        return out

    async def ValidateModel(self, request: pb.ValidateModelRequest, context) -> pb.ValidateModelResponse:
        if not request.model_name:
            raise InvalidArgument("model_name", "is required, e.g. \"smollm2\"")
        out = pb.ValidateModelResponse(model_name=request.model_name, requires_token=False)
        try:
            facts = await self._jobs.facts(request.model_name)
        except InvalidArgument:
            raise
        except LlmServeError as exc:  # an unknown or unusable model is an answer, not an error
            out.message = exc.message
            return out
        if facts.shape is None:
            out.message = facts.unavailable or "model config could not be read"
            return out
        est, _ = self._jobs.memory_check(facts.shape)
        out.valid = out.accessible = True
        out.model_info.CopyFrom(_model_info(facts))
        out.memory_requirements.CopyFrom(pb.MemoryRequirements(minimum_gb=est.minimum_gb,
                                                               recommended_gb=est.recommended_gb))
        return out

    async def UploadCorpus(self, request_iterator, context) -> pb.UploadCorpusResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "filename":
            raise InvalidArgument("filename", "the first message must carry the file name")

        async def chunks():
            async for message in request_iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise InvalidArgument("chunk", "every message after the first must carry a chunk")
                yield message.chunk

        return _uploaded(await self._corpora.save(tenant(), first.filename, chunks()), pb.UploadCorpusResponse)

    async def UploadCorpusMultipart(self, request: pb.UploadCorpusMultipartRequest,
                                    context) -> pb.UploadCorpusMultipartResponse:
        filename, data = parse_multipart(request.http_body.content_type, request.http_body.data)

        async def one():
            yield data

        return _uploaded(await self._corpora.save(tenant(), filename, one(), field="file"), pb.UploadCorpusMultipartResponse)

    async def _facts(self, model_name: str) -> ModelFacts:
        if not model_name:
            raise InvalidArgument("model_name", "is required, e.g. \"smollm2\"")
        facts = await self._jobs.facts(model_name)
        if facts.shape is None:
            raise InvalidArgument("model_name", f"model '{model_name}' cannot be used here: {facts.unavailable}")
        return facts


def build(ctx: ServiceContext) -> SaeTrainingServicer:
    return SaeTrainingServicer(ctx.features.sae, ctx.features.sae_corpora)


BINDING = ServiceBinding(full_name(pb, "SaeTrainingService"), pb_grpc.add_SaeTrainingServiceServicer_to_server, build)
