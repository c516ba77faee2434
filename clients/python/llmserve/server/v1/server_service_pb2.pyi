from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("message", "version", "endpoints", "models")
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    message: str
    version: str
    endpoints: _containers.ScalarMap[str, str]
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message: _Optional[str] = ..., version: _Optional[str] = ..., endpoints: _Optional[_Mapping[str, str]] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemoryStatus(_message.Message):
    __slots__ = ("free_gb", "total_gb")
    FREE_GB_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GB_FIELD_NUMBER: _ClassVar[int]
    free_gb: float
    total_gb: float
    def __init__(self, free_gb: _Optional[float] = ..., total_gb: _Optional[float] = ...) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("status", "model", "device", "timestamp", "initialized", "specialists", "service", "version", "gpu_available", "gpu_count", "memory_status", "services", "tokenizer_path", "generalist_ckpt_path", "shiftable_ckpt_path", "linear_kernels", "linear_kernels_source")
    class MemoryStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MemoryStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MemoryStatus, _Mapping]] = ...) -> None: ...
    class ServicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GPU_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_STATUS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_PATH_FIELD_NUMBER: _ClassVar[int]
    GENERALIST_CKPT_PATH_FIELD_NUMBER: _ClassVar[int]
    SHIFTABLE_CKPT_PATH_FIELD_NUMBER: _ClassVar[int]
    LINEAR_KERNELS_FIELD_NUMBER: _ClassVar[int]
    LINEAR_KERNELS_SOURCE_FIELD_NUMBER: _ClassVar[int]
    status: str
    model: str
    device: str
    timestamp: float
    initialized: bool
    specialists: _containers.RepeatedScalarFieldContainer[str]
    service: str
    version: str
    gpu_available: bool
    gpu_count: int
    memory_status: _containers.MessageMap[str, MemoryStatus]
    services: _containers.ScalarMap[str, str]
    tokenizer_path: str
    generalist_ckpt_path: str
    shiftable_ckpt_path: str
    linear_kernels: _containers.RepeatedCompositeFieldContainer[LinearKernel]
    linear_kernels_source: str
    def __init__(self, status: _Optional[str] = ..., model: _Optional[str] = ..., device: _Optional[str] = ..., timestamp: _Optional[float] = ..., initialized: _Optional[bool] = ..., specialists: _Optional[_Iterable[str]] = ..., service: _Optional[str] = ..., version: _Optional[str] = ..., gpu_available: _Optional[bool] = ..., gpu_count: _Optional[int] = ..., memory_status: _Optional[_Mapping[str, MemoryStatus]] = ..., services: _Optional[_Mapping[str, str]] = ..., tokenizer_path: _Optional[str] = ..., generalist_ckpt_path: _Optional[str] = ..., shiftable_ckpt_path: _Optional[str] = ..., linear_kernels: _Optional[_Iterable[_Union[LinearKernel, _Mapping]]] = ..., linear_kernels_source: _Optional[str] = ...) -> None: ...

class LinearKernel(_message.Message):
    __slots__ = ("min_rows", "max_rows", "kernel", "measured_ms")
    class MeasuredMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    MEASURED_MS_FIELD_NUMBER: _ClassVar[int]
    min_rows: int
    max_rows: int
    kernel: str
    measured_ms: _containers.ScalarMap[str, float]
    def __init__(self, min_rows: _Optional[int] = ..., max_rows: _Optional[int] = ..., kernel: _Optional[str] = ..., measured_ms: _Optional[_Mapping[str, float]] = ...) -> None: ...
