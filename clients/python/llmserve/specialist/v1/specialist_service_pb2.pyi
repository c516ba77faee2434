import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmserve.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpecialistState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPECIALIST_STATE_UNSPECIFIED: _ClassVar[SpecialistState]
    SPECIALIST_STATE_UPLOADED: _ClassVar[SpecialistState]
    SPECIALIST_STATE_TRAINING: _ClassVar[SpecialistState]
    SPECIALIST_STATE_READY: _ClassVar[SpecialistState]
    SPECIALIST_STATE_FAILED: _ClassVar[SpecialistState]

class RoutingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_MODE_UNSPECIFIED: _ClassVar[RoutingMode]
    ROUTING_MODE_SOFT: _ClassVar[RoutingMode]
    ROUTING_MODE_HARD: _ClassVar[RoutingMode]

class GateGranularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GATE_GRANULARITY_UNSPECIFIED: _ClassVar[GateGranularity]
    GATE_GRANULARITY_MEAN: _ClassVar[GateGranularity]
    GATE_GRANULARITY_PER_TOKEN: _ClassVar[GateGranularity]

class TrainingJobTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_JOB_TRIGGER_UNSPECIFIED: _ClassVar[TrainingJobTrigger]
    TRAINING_JOB_TRIGGER_ADD_SPECIALIST: _ClassVar[TrainingJobTrigger]
    TRAINING_JOB_TRIGGER_DELETE_SPECIALIST: _ClassVar[TrainingJobTrigger]
    TRAINING_JOB_TRIGGER_MANUAL: _ClassVar[TrainingJobTrigger]
    TRAINING_JOB_TRIGGER_STARTUP: _ClassVar[TrainingJobTrigger]
SPECIALIST_STATE_UNSPECIFIED: SpecialistState
SPECIALIST_STATE_UPLOADED: SpecialistState
SPECIALIST_STATE_TRAINING: SpecialistState
SPECIALIST_STATE_READY: SpecialistState
SPECIALIST_STATE_FAILED: SpecialistState
ROUTING_MODE_UNSPECIFIED: RoutingMode
ROUTING_MODE_SOFT: RoutingMode
ROUTING_MODE_HARD: RoutingMode
GATE_GRANULARITY_UNSPECIFIED: GateGranularity
GATE_GRANULARITY_MEAN: GateGranularity
GATE_GRANULARITY_PER_TOKEN: GateGranularity
TRAINING_JOB_TRIGGER_UNSPECIFIED: TrainingJobTrigger
TRAINING_JOB_TRIGGER_ADD_SPECIALIST: TrainingJobTrigger
TRAINING_JOB_TRIGGER_DELETE_SPECIALIST: TrainingJobTrigger
TRAINING_JOB_TRIGGER_MANUAL: TrainingJobTrigger
TRAINING_JOB_TRIGGER_STARTUP: TrainingJobTrigger

class SpecialistMetrics(_message.Message):
    __slots__ = ("heldout_perplexity", "heldout_loss", "train_tokens", "heldout_tokens")
    HELDOUT_PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    HELDOUT_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HELDOUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    heldout_perplexity: float
    heldout_loss: float
    train_tokens: int
    heldout_tokens: int
    def __init__(self, heldout_perplexity: _Optional[float] = ..., heldout_loss: _Optional[float] = ..., train_tokens: _Optional[int] = ..., heldout_tokens: _Optional[int] = ...) -> None: ...

class Specialist(_message.Message):
    __slots__ = ("name", "state", "corpus_size_bytes", "corpus_file_count", "metrics", "training_job_id", "create_time", "update_time", "train_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CORPUS_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CORPUS_FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: SpecialistState
    corpus_size_bytes: int
    corpus_file_count: int
    metrics: SpecialistMetrics
    training_job_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    train_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[SpecialistState, str]] = ..., corpus_size_bytes: _Optional[int] = ..., corpus_file_count: _Optional[int] = ..., metrics: _Optional[_Union[SpecialistMetrics, _Mapping]] = ..., training_job_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., train_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "state", "trigger", "specialists", "progress", "step", "total_steps", "loss", "message", "create_time", "start_time", "end_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: _common_pb2.JobState
    trigger: TrainingJobTrigger
    specialists: _containers.RepeatedScalarFieldContainer[str]
    progress: float
    step: int
    total_steps: int
    loss: float
    message: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., trigger: _Optional[_Union[TrainingJobTrigger, str]] = ..., specialists: _Optional[_Iterable[str]] = ..., progress: _Optional[float] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrainingJobProgress(_message.Message):
    __slots__ = ("job_id", "state", "progress", "step", "total_steps", "loss", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: _common_pb2.JobState
    progress: float
    step: int
    total_steps: int
    loss: float
    message: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., progress: _Optional[float] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class LayerGates(_message.Message):
    __slots__ = ("layer", "weights", "token_weights")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    layer: int
    weights: _containers.RepeatedScalarFieldContainer[float]
    token_weights: _containers.RepeatedCompositeFieldContainer[GateWeights]
    def __init__(self, layer: _Optional[int] = ..., weights: _Optional[_Iterable[float]] = ..., token_weights: _Optional[_Iterable[_Union[GateWeights, _Mapping]]] = ...) -> None: ...

class GateWeights(_message.Message):
    __slots__ = ("weights",)
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, weights: _Optional[_Iterable[float]] = ...) -> None: ...

class ListSpecialistsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSpecialistsResponse(_message.Message):
    __slots__ = ("specialists",)
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    specialists: _containers.RepeatedCompositeFieldContainer[Specialist]
    def __init__(self, specialists: _Optional[_Iterable[_Union[Specialist, _Mapping]]] = ...) -> None: ...

class ListSpecialistNamesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSpecialistNamesResponse(_message.Message):
    __slots__ = ("body", "names")
    BODY_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    body: _httpbody_pb2.HttpBody
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSpecialistRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSpecialistResponse(_message.Message):
    __slots__ = ("specialist",)
    SPECIALIST_FIELD_NUMBER: _ClassVar[int]
    specialist: Specialist
    def __init__(self, specialist: _Optional[_Union[Specialist, _Mapping]] = ...) -> None: ...

class AddSpecialistRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AddSpecialistResponse(_message.Message):
    __slots__ = ("message", "specialists", "training_job_id", "specialist")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPECIALIST_FIELD_NUMBER: _ClassVar[int]
    message: str
    specialists: _containers.RepeatedScalarFieldContainer[str]
    training_job_id: str
    specialist: Specialist
    def __init__(self, message: _Optional[str] = ..., specialists: _Optional[_Iterable[str]] = ..., training_job_id: _Optional[str] = ..., specialist: _Optional[_Union[Specialist, _Mapping]] = ...) -> None: ...

class UploadSpecialistCorpusRequest(_message.Message):
    __slots__ = ("name", "file_name", "chunk", "overwrite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    file_name: str
    chunk: _httpbody_pb2.HttpBody
    overwrite: bool
    def __init__(self, name: _Optional[str] = ..., file_name: _Optional[str] = ..., chunk: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class UploadSpecialistCorpusResponse(_message.Message):
    __slots__ = ("name", "file_name", "size_bytes", "specialist")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SPECIALIST_FIELD_NUMBER: _ClassVar[int]
    name: str
    file_name: str
    size_bytes: int
    specialist: Specialist
    def __init__(self, name: _Optional[str] = ..., file_name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., specialist: _Optional[_Union[Specialist, _Mapping]] = ...) -> None: ...

class DeleteSpecialistRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSpecialistResponse(_message.Message):
    __slots__ = ("message", "specialists", "training_job_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    message: str
    specialists: _containers.RepeatedScalarFieldContainer[str]
    training_job_id: str
    def __init__(self, message: _Optional[str] = ..., specialists: _Optional[_Iterable[str]] = ..., training_job_id: _Optional[str] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "max_new_tokens", "temperature", "top_k", "routing_mode", "force_specialist")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    ROUTING_MODE_FIELD_NUMBER: _ClassVar[int]
    FORCE_SPECIALIST_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    max_new_tokens: int
    temperature: float
    top_k: int
    routing_mode: RoutingMode
    force_specialist: str
    def __init__(self, prompt: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., routing_mode: _Optional[_Union[RoutingMode, str]] = ..., force_specialist: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("prompt", "completion", "full_text", "specialists", "finish_reason", "usage")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    completion: str
    full_text: str
    specialists: _containers.RepeatedScalarFieldContainer[str]
    finish_reason: _common_pb2.FinishReason
    usage: _common_pb2.Usage
    def __init__(self, prompt: _Optional[str] = ..., completion: _Optional[str] = ..., full_text: _Optional[str] = ..., specialists: _Optional[_Iterable[str]] = ..., finish_reason: _Optional[_Union[_common_pb2.FinishReason, str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ...) -> None: ...

class StreamGenerateRequest(_message.Message):
    __slots__ = ("prompt", "max_new_tokens", "temperature", "top_k", "routing_mode", "force_specialist")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    ROUTING_MODE_FIELD_NUMBER: _ClassVar[int]
    FORCE_SPECIALIST_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    max_new_tokens: int
    temperature: float
    top_k: int
    routing_mode: RoutingMode
    force_specialist: str
    def __init__(self, prompt: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., routing_mode: _Optional[_Union[RoutingMode, str]] = ..., force_specialist: _Optional[str] = ...) -> None: ...

class StreamGenerateResponse(_message.Message):
    __slots__ = ("delta", "final", "error")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    delta: _common_pb2.TokenDelta
    final: _common_pb2.GenerationFinal
    error: _common_pb2.StreamError
    def __init__(self, delta: _Optional[_Union[_common_pb2.TokenDelta, _Mapping]] = ..., final: _Optional[_Union[_common_pb2.GenerationFinal, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.StreamError, _Mapping]] = ...) -> None: ...

class InspectGatesRequest(_message.Message):
    __slots__ = ("prompt", "granularity")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    granularity: GateGranularity
    def __init__(self, prompt: _Optional[str] = ..., granularity: _Optional[_Union[GateGranularity, str]] = ...) -> None: ...

class InspectGatesResponse(_message.Message):
    __slots__ = ("experts", "tokens", "token_ids", "layers")
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    experts: _containers.RepeatedScalarFieldContainer[str]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    layers: _containers.RepeatedCompositeFieldContainer[LayerGates]
    def __init__(self, experts: _Optional[_Iterable[str]] = ..., tokens: _Optional[_Iterable[str]] = ..., token_ids: _Optional[_Iterable[int]] = ..., layers: _Optional[_Iterable[_Union[LayerGates, _Mapping]]] = ...) -> None: ...

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("steps",)
    STEPS_FIELD_NUMBER: _ClassVar[int]
    steps: int
    def __init__(self, steps: _Optional[int] = ...) -> None: ...

class CreateTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.JobState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[_common_pb2.JobState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("job_id", "options")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    options: CancelOptions
    def __init__(self, job_id: _Optional[str] = ..., options: _Optional[_Union[CancelOptions, _Mapping]] = ...) -> None: ...

class CancelOptions(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("progress", "final", "error")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    progress: TrainingJobProgress
    final: TrainingJob
    error: _common_pb2.StreamError
    def __init__(self, progress: _Optional[_Union[TrainingJobProgress, _Mapping]] = ..., final: _Optional[_Union[TrainingJob, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.StreamError, _Mapping]] = ...) -> None: ...
