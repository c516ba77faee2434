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

class SaeArchitecture(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAE_ARCHITECTURE_UNSPECIFIED: _ClassVar[SaeArchitecture]
    SAE_ARCHITECTURE_TOPK: _ClassVar[SaeArchitecture]
    SAE_ARCHITECTURE_L1: _ClassVar[SaeArchitecture]
SAE_ARCHITECTURE_UNSPECIFIED: SaeArchitecture
SAE_ARCHITECTURE_TOPK: SaeArchitecture
SAE_ARCHITECTURE_L1: SaeArchitecture

class GetGpuStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetGpuStatusResponse(_message.Message):
    __slots__ = ("cuda_available", "device_count", "current_device", "gpus", "host_memory")
    class GpusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: GpuDeviceStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[GpuDeviceStatus, _Mapping]] = ...) -> None: ...
    CUDA_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_DEVICE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    HOST_MEMORY_FIELD_NUMBER: _ClassVar[int]
    cuda_available: bool
    device_count: int
    current_device: int
    gpus: _containers.MessageMap[str, GpuDeviceStatus]
    host_memory: HostMemory
    def __init__(self, cuda_available: _Optional[bool] = ..., device_count: _Optional[int] = ..., current_device: _Optional[int] = ..., gpus: _Optional[_Mapping[str, GpuDeviceStatus]] = ..., host_memory: _Optional[_Union[HostMemory, _Mapping]] = ...) -> None: ...

class GpuDeviceStatus(_message.Message):
    __slots__ = ("name", "memory_total", "memory_allocated", "memory_free", "free_gb", "utilization")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_FIELD_NUMBER: _ClassVar[int]
    FREE_GB_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    memory_total: float
    memory_allocated: float
    memory_free: float
    free_gb: float
    utilization: float
    def __init__(self, name: _Optional[str] = ..., memory_total: _Optional[float] = ..., memory_allocated: _Optional[float] = ..., memory_free: _Optional[float] = ..., free_gb: _Optional[float] = ..., utilization: _Optional[float] = ...) -> None: ...

class HostMemory(_message.Message):
    __slots__ = ("total_gb", "free_gb")
    TOTAL_GB_FIELD_NUMBER: _ClassVar[int]
    FREE_GB_FIELD_NUMBER: _ClassVar[int]
    total_gb: float
    free_gb: float
    def __init__(self, total_gb: _Optional[float] = ..., free_gb: _Optional[float] = ...) -> None: ...

class GetServiceHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServiceHealthResponse(_message.Message):
    __slots__ = ("service", "status", "version", "gpu_available", "gpu_count", "memory_status")
    class MemoryStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: GpuMemory
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[GpuMemory, _Mapping]] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GPU_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_STATUS_FIELD_NUMBER: _ClassVar[int]
    service: str
    status: str
    version: str
    gpu_available: bool
    gpu_count: int
    memory_status: _containers.MessageMap[str, GpuMemory]
    def __init__(self, service: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[str] = ..., gpu_available: _Optional[bool] = ..., gpu_count: _Optional[int] = ..., memory_status: _Optional[_Mapping[str, GpuMemory]] = ...) -> None: ...

class GpuMemory(_message.Message):
    __slots__ = ("free_gb", "total_gb")
    FREE_GB_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GB_FIELD_NUMBER: _ClassVar[int]
    free_gb: float
    total_gb: float
    def __init__(self, free_gb: _Optional[float] = ..., total_gb: _Optional[float] = ...) -> None: ...

class CreateTrainingJobRequest(_message.Message):
    __slots__ = ("model_name", "corpus_file", "layer_number", "huggingface_token", "hidden_dim", "expansion_factor", "sparsity_coeff", "learning_rate", "batch_size", "max_epochs", "min_loss", "gpu_id", "max_sequence_length", "architecture", "k")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CORPUS_FILE_FIELD_NUMBER: _ClassVar[int]
    LAYER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    HUGGINGFACE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_DIM_FIELD_NUMBER: _ClassVar[int]
    EXPANSION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_COEFF_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    GPU_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    corpus_file: str
    layer_number: int
    huggingface_token: str
    hidden_dim: int
    expansion_factor: int
    sparsity_coeff: float
    learning_rate: float
    batch_size: int
    max_epochs: int
    min_loss: float
    gpu_id: int
    max_sequence_length: int
    architecture: SaeArchitecture
    k: int
    def __init__(self, model_name: _Optional[str] = ..., corpus_file: _Optional[str] = ..., layer_number: _Optional[int] = ..., huggingface_token: _Optional[str] = ..., hidden_dim: _Optional[int] = ..., expansion_factor: _Optional[int] = ..., sparsity_coeff: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., max_epochs: _Optional[int] = ..., min_loss: _Optional[float] = ..., gpu_id: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., architecture: _Optional[_Union[SaeArchitecture, str]] = ..., k: _Optional[int] = ...) -> None: ...

class CreateTrainingJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "message", "model_name", "requires_token", "memory_check", "optimizations_applied", "state")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CHECK_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZATIONS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    message: str
    model_name: str
    requires_token: bool
    memory_check: str
    optimizations_applied: str
    state: _common_pb2.JobState
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., model_name: _Optional[str] = ..., requires_token: _Optional[bool] = ..., memory_check: _Optional[str] = ..., optimizations_applied: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_name", "actual_model_loaded", "architecture", "total_layers", "selected_layer", "hidden_size", "vocab_size", "requires_token")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_MODEL_LOADED_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LAYERS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_LAYER_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    actual_model_loaded: str
    architecture: str
    total_layers: int
    selected_layer: int
    hidden_size: int
    vocab_size: int
    requires_token: bool
    def __init__(self, model_name: _Optional[str] = ..., actual_model_loaded: _Optional[str] = ..., architecture: _Optional[str] = ..., total_layers: _Optional[int] = ..., selected_layer: _Optional[int] = ..., hidden_size: _Optional[int] = ..., vocab_size: _Optional[int] = ..., requires_token: _Optional[bool] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "progress", "current_epoch", "current_loss", "estimated_time_remaining", "message", "model_info", "last_checkpoint", "state", "tokens_processed")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOSS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_REMAINING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    progress: float
    current_epoch: int
    current_loss: float
    estimated_time_remaining: int
    message: str
    model_info: ModelInfo
    last_checkpoint: str
    state: _common_pb2.JobState
    tokens_processed: int
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[float] = ..., current_epoch: _Optional[int] = ..., current_loss: _Optional[float] = ..., estimated_time_remaining: _Optional[int] = ..., message: _Optional[str] = ..., model_info: _Optional[_Union[ModelInfo, _Mapping]] = ..., last_checkpoint: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., tokens_processed: _Optional[int] = ...) -> None: ...

class GetTrainingResultRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingResultResponse(_message.Message):
    __slots__ = ("job_id", "status", "model_path", "activations_path", "metadata_path", "training_stats", "feature_count", "model_info", "ready_for_find_service", "checkpoints", "state", "metrics", "artifacts")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_PATH_FIELD_NUMBER: _ClassVar[int]
    METADATA_PATH_FIELD_NUMBER: _ClassVar[int]
    TRAINING_STATS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    READY_FOR_FIND_SERVICE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    model_path: str
    activations_path: str
    metadata_path: str
    training_stats: TrainingStats
    feature_count: int
    model_info: ModelInfo
    ready_for_find_service: bool
    checkpoints: _containers.RepeatedScalarFieldContainer[str]
    state: _common_pb2.JobState
    metrics: SaeMetrics
    artifacts: SaeArtifacts
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., model_path: _Optional[str] = ..., activations_path: _Optional[str] = ..., metadata_path: _Optional[str] = ..., training_stats: _Optional[_Union[TrainingStats, _Mapping]] = ..., feature_count: _Optional[int] = ..., model_info: _Optional[_Union[ModelInfo, _Mapping]] = ..., ready_for_find_service: _Optional[bool] = ..., checkpoints: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., metrics: _Optional[_Union[SaeMetrics, _Mapping]] = ..., artifacts: _Optional[_Union[SaeArtifacts, _Mapping]] = ...) -> None: ...

class TrainingStats(_message.Message):
    __slots__ = ("final_loss", "total_epochs", "training_time_seconds", "convergence_epoch", "feature_statistics", "resumed_from_epoch", "tokens_per_second")
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONVERGENCE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_STATISTICS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    final_loss: float
    total_epochs: int
    training_time_seconds: float
    convergence_epoch: int
    feature_statistics: FeatureStatistics
    resumed_from_epoch: int
    tokens_per_second: float
    def __init__(self, final_loss: _Optional[float] = ..., total_epochs: _Optional[int] = ..., training_time_seconds: _Optional[float] = ..., convergence_epoch: _Optional[int] = ..., feature_statistics: _Optional[_Union[FeatureStatistics, _Mapping]] = ..., resumed_from_epoch: _Optional[int] = ..., tokens_per_second: _Optional[float] = ...) -> None: ...

class FeatureStatistics(_message.Message):
    __slots__ = ("total_features", "active_features", "dead_features", "mean_activation", "sparsity_achieved")
    TOTAL_FEATURES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    DEAD_FEATURES_FIELD_NUMBER: _ClassVar[int]
    MEAN_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_ACHIEVED_FIELD_NUMBER: _ClassVar[int]
    total_features: int
    active_features: int
    dead_features: int
    mean_activation: float
    sparsity_achieved: float
    def __init__(self, total_features: _Optional[int] = ..., active_features: _Optional[int] = ..., dead_features: _Optional[int] = ..., mean_activation: _Optional[float] = ..., sparsity_achieved: _Optional[float] = ...) -> None: ...

class SaeMetrics(_message.Message):
    __slots__ = ("fvu", "l0", "dead_fraction", "dead_window_tokens", "dense_fraction", "dense_threshold", "mean_activation", "ce_loss_score", "eval_tokens", "loss_curve")
    FVU_FIELD_NUMBER: _ClassVar[int]
    L0_FIELD_NUMBER: _ClassVar[int]
    DEAD_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DEAD_WINDOW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DENSE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    DENSE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MEAN_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    CE_LOSS_SCORE_FIELD_NUMBER: _ClassVar[int]
    EVAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOSS_CURVE_FIELD_NUMBER: _ClassVar[int]
    fvu: float
    l0: float
    dead_fraction: float
    dead_window_tokens: int
    dense_fraction: float
    dense_threshold: float
    mean_activation: float
    ce_loss_score: float
    eval_tokens: int
    loss_curve: _containers.RepeatedCompositeFieldContainer[LossCurvePoint]
    def __init__(self, fvu: _Optional[float] = ..., l0: _Optional[float] = ..., dead_fraction: _Optional[float] = ..., dead_window_tokens: _Optional[int] = ..., dense_fraction: _Optional[float] = ..., dense_threshold: _Optional[float] = ..., mean_activation: _Optional[float] = ..., ce_loss_score: _Optional[float] = ..., eval_tokens: _Optional[int] = ..., loss_curve: _Optional[_Iterable[_Union[LossCurvePoint, _Mapping]]] = ...) -> None: ...

class LossCurvePoint(_message.Message):
    __slots__ = ("step", "epoch", "tokens_processed", "loss", "l0")
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    L0_FIELD_NUMBER: _ClassVar[int]
    step: int
    epoch: int
    tokens_processed: int
    loss: float
    l0: float
    def __init__(self, step: _Optional[int] = ..., epoch: _Optional[int] = ..., tokens_processed: _Optional[int] = ..., loss: _Optional[float] = ..., l0: _Optional[float] = ...) -> None: ...

class SaeArtifacts(_message.Message):
    __slots__ = ("weights_path", "config_path", "feature_stats_path")
    WEIGHTS_PATH_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_STATS_PATH_FIELD_NUMBER: _ClassVar[int]
    weights_path: str
    config_path: str
    feature_stats_path: str
    def __init__(self, weights_path: _Optional[str] = ..., config_path: _Optional[str] = ..., feature_stats_path: _Optional[str] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: _common_pb2.JobState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("total_jobs", "jobs", "next_page_token")
    TOTAL_JOBS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    total_jobs: int
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJobSummary]
    next_page_token: str
    def __init__(self, total_jobs: _Optional[int] = ..., jobs: _Optional[_Iterable[_Union[TrainingJobSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TrainingJobSummary(_message.Message):
    __slots__ = ("job_id", "status", "model_name", "created_at", "completed_at", "state")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    model_name: str
    created_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    state: _common_pb2.JobState
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., model_name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

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
    __slots__ = ("job_id", "status", "message", "state")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    message: str
    state: _common_pb2.JobState
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("job_id", "min_interval_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    min_interval_seconds: float
    def __init__(self, job_id: _Optional[str] = ..., min_interval_seconds: _Optional[float] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("progress", "final", "error")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    progress: TrainingProgress
    final: TrainingProgress
    error: _common_pb2.StreamError
    def __init__(self, progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., final: _Optional[_Union[TrainingProgress, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.StreamError, _Mapping]] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("state", "status", "progress", "epoch", "loss", "tokens_processed", "message", "estimated_time_remaining")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_REMAINING_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.JobState
    status: str
    progress: float
    epoch: int
    loss: float
    tokens_processed: int
    message: str
    estimated_time_remaining: int
    def __init__(self, state: _Optional[_Union[_common_pb2.JobState, str]] = ..., status: _Optional[str] = ..., progress: _Optional[float] = ..., epoch: _Optional[int] = ..., loss: _Optional[float] = ..., tokens_processed: _Optional[int] = ..., message: _Optional[str] = ..., estimated_time_remaining: _Optional[int] = ...) -> None: ...

class CheckMemoryRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class CheckMemoryResponse(_message.Message):
    __slots__ = ("model_name", "memory_check", "optimization_suggestions", "gpu_compatibility")
    class GpuCompatibilityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: GpuCompatibility
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[GpuCompatibility, _Mapping]] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CHECK_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZATION_SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    GPU_COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    memory_check: MemoryCheck
    optimization_suggestions: OptimizationSuggestions
    gpu_compatibility: _containers.MessageMap[str, GpuCompatibility]
    def __init__(self, model_name: _Optional[str] = ..., memory_check: _Optional[_Union[MemoryCheck, _Mapping]] = ..., optimization_suggestions: _Optional[_Union[OptimizationSuggestions, _Mapping]] = ..., gpu_compatibility: _Optional[_Mapping[str, GpuCompatibility]] = ...) -> None: ...

class MemoryCheck(_message.Message):
    __slots__ = ("sufficient", "required_gb", "available_gb", "recommendations")
    SUFFICIENT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_GB_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_GB_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    sufficient: bool
    required_gb: float
    available_gb: float
    recommendations: MemoryRecommendations
    def __init__(self, sufficient: _Optional[bool] = ..., required_gb: _Optional[float] = ..., available_gb: _Optional[float] = ..., recommendations: _Optional[_Union[MemoryRecommendations, _Mapping]] = ...) -> None: ...

class MemoryRecommendations(_message.Message):
    __slots__ = ("min_gpu_memory_gb", "recommended_gpu_memory_gb", "is_large_model", "use_4bit_quantization", "use_gradient_checkpointing")
    MIN_GPU_MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_GPU_MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    IS_LARGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    USE_4BIT_QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    USE_GRADIENT_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    min_gpu_memory_gb: float
    recommended_gpu_memory_gb: float
    is_large_model: bool
    use_4bit_quantization: bool
    use_gradient_checkpointing: bool
    def __init__(self, min_gpu_memory_gb: _Optional[float] = ..., recommended_gpu_memory_gb: _Optional[float] = ..., is_large_model: _Optional[bool] = ..., use_4bit_quantization: _Optional[bool] = ..., use_gradient_checkpointing: _Optional[bool] = ...) -> None: ...

class OptimizationSuggestions(_message.Message):
    __slots__ = ("batch_size", "max_sequence_length", "enable_4bit", "enable_checkpointing")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ENABLE_4BIT_FIELD_NUMBER: _ClassVar[int]
    ENABLE_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    max_sequence_length: int
    enable_4bit: bool
    enable_checkpointing: bool
    def __init__(self, batch_size: _Optional[int] = ..., max_sequence_length: _Optional[int] = ..., enable_4bit: _Optional[bool] = ..., enable_checkpointing: _Optional[bool] = ...) -> None: ...

class GpuCompatibility(_message.Message):
    __slots__ = ("compatible", "memory_sufficient", "recommended")
    COMPATIBLE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SUFFICIENT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_FIELD_NUMBER: _ClassVar[int]
    compatible: bool
    memory_sufficient: bool
    recommended: bool
    def __init__(self, compatible: _Optional[bool] = ..., memory_sufficient: _Optional[bool] = ..., recommended: _Optional[bool] = ...) -> None: ...

class ValidateModelRequest(_message.Message):
    __slots__ = ("model_name", "huggingface_token")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    HUGGINGFACE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    huggingface_token: str
    def __init__(self, model_name: _Optional[str] = ..., huggingface_token: _Optional[str] = ...) -> None: ...

class ValidateModelResponse(_message.Message):
    __slots__ = ("model_name", "valid", "accessible", "requires_token", "model_info", "memory_requirements", "message")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    ACCESSIBLE_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    valid: bool
    accessible: bool
    requires_token: bool
    model_info: ModelInfo
    memory_requirements: MemoryRequirements
    message: str
    def __init__(self, model_name: _Optional[str] = ..., valid: _Optional[bool] = ..., accessible: _Optional[bool] = ..., requires_token: _Optional[bool] = ..., model_info: _Optional[_Union[ModelInfo, _Mapping]] = ..., memory_requirements: _Optional[_Union[MemoryRequirements, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class MemoryRequirements(_message.Message):
    __slots__ = ("minimum_gb", "recommended_gb")
    MINIMUM_GB_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_GB_FIELD_NUMBER: _ClassVar[int]
    minimum_gb: float
    recommended_gb: float
    def __init__(self, minimum_gb: _Optional[float] = ..., recommended_gb: _Optional[float] = ...) -> None: ...

class UploadCorpusRequest(_message.Message):
    __slots__ = ("filename", "chunk")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    filename: str
    chunk: bytes
    def __init__(self, filename: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadCorpusResponse(_message.Message):
    __slots__ = ("message", "filename", "size_bytes", "lines_count", "path")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINES_COUNT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    message: str
    filename: str
    size_bytes: float
    lines_count: int
    path: str
    def __init__(self, message: _Optional[str] = ..., filename: _Optional[str] = ..., size_bytes: _Optional[float] = ..., lines_count: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class UploadCorpusMultipartRequest(_message.Message):
    __slots__ = ("http_body",)
    HTTP_BODY_FIELD_NUMBER: _ClassVar[int]
    http_body: _httpbody_pb2.HttpBody
    def __init__(self, http_body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadCorpusMultipartResponse(_message.Message):
    __slots__ = ("message", "filename", "size_bytes", "lines_count", "path")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINES_COUNT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    message: str
    filename: str
    size_bytes: float
    lines_count: int
    path: str
    def __init__(self, message: _Optional[str] = ..., filename: _Optional[str] = ..., size_bytes: _Optional[float] = ..., lines_count: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...
