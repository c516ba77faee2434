import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmserve.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Lut(_message.Message):
    __slots__ = ("lut_name", "model", "entry_count", "labels", "labels_truncated", "size_bytes", "version", "create_time", "update_time")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LABELS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    entry_count: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    labels_truncated: bool
    size_bytes: int
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., entry_count: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., labels_truncated: _Optional[bool] = ..., size_bytes: _Optional[int] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LutEntry(_message.Message):
    __slots__ = ("entry_id", "label", "label_context", "size_bytes", "create_time", "superseded_by_entry_id")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_BY_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    label: str
    label_context: str
    size_bytes: int
    create_time: _timestamp_pb2.Timestamp
    superseded_by_entry_id: str
    def __init__(self, entry_id: _Optional[str] = ..., label: _Optional[str] = ..., label_context: _Optional[str] = ..., size_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., superseded_by_entry_id: _Optional[str] = ...) -> None: ...

class TrainLutRequest(_message.Message):
    __slots__ = ("label", "label_context", "lut_name", "model")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    label: str
    label_context: str
    lut_name: str
    model: str
    def __init__(self, label: _Optional[str] = ..., label_context: _Optional[str] = ..., lut_name: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class TrainLutResponse(_message.Message):
    __slots__ = ("status", "lut_name", "model", "entry_id", "entry_count", "version", "superseded_entry_ids")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    status: str
    lut_name: str
    model: str
    entry_id: str
    entry_count: int
    version: int
    superseded_entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., lut_name: _Optional[str] = ..., model: _Optional[str] = ..., entry_id: _Optional[str] = ..., entry_count: _Optional[int] = ..., version: _Optional[int] = ..., superseded_entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "lut_name", "model", "length", "max_new_tokens", "threshold", "temperature", "top_k")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    lut_name: str
    model: str
    length: int
    max_new_tokens: int
    threshold: float
    temperature: float
    top_k: int
    def __init__(self, prompt: _Optional[str] = ..., lut_name: _Optional[str] = ..., model: _Optional[str] = ..., length: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., threshold: _Optional[float] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("prompt", "completion", "full_text", "specialists", "lut_name", "model", "finish_reason", "usage")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    completion: str
    full_text: str
    specialists: _containers.RepeatedScalarFieldContainer[str]
    lut_name: str
    model: str
    finish_reason: _common_pb2.FinishReason
    usage: _common_pb2.Usage
    def __init__(self, prompt: _Optional[str] = ..., completion: _Optional[str] = ..., full_text: _Optional[str] = ..., specialists: _Optional[_Iterable[str]] = ..., lut_name: _Optional[str] = ..., model: _Optional[str] = ..., finish_reason: _Optional[_Union[_common_pb2.FinishReason, str]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ...) -> None: ...

class StreamGenerateRequest(_message.Message):
    __slots__ = ("prompt", "lut_name", "model", "length", "max_new_tokens", "threshold", "temperature", "top_k")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    lut_name: str
    model: str
    length: int
    max_new_tokens: int
    threshold: float
    temperature: float
    top_k: int
    def __init__(self, prompt: _Optional[str] = ..., lut_name: _Optional[str] = ..., model: _Optional[str] = ..., length: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., threshold: _Optional[float] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ...) -> None: ...

class StreamGenerateResponse(_message.Message):
    __slots__ = ("delta", "final", "error")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    delta: _common_pb2.TokenDelta
    final: _common_pb2.GenerationFinal
    error: _common_pb2.StreamError
    def __init__(self, delta: _Optional[_Union[_common_pb2.TokenDelta, _Mapping]] = ..., final: _Optional[_Union[_common_pb2.GenerationFinal, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.StreamError, _Mapping]] = ...) -> None: ...

class ListLutsRequest(_message.Message):
    __slots__ = ("model", "page_size", "page_token")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model: str
    page_size: int
    page_token: str
    def __init__(self, model: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLutsResponse(_message.Message):
    __slots__ = ("luts", "next_page_token")
    LUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    luts: _containers.RepeatedCompositeFieldContainer[Lut]
    next_page_token: str
    def __init__(self, luts: _Optional[_Iterable[_Union[Lut, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetLutRequest(_message.Message):
    __slots__ = ("lut_name", "model")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class GetLutResponse(_message.Message):
    __slots__ = ("lut",)
    LUT_FIELD_NUMBER: _ClassVar[int]
    lut: Lut
    def __init__(self, lut: _Optional[_Union[Lut, _Mapping]] = ...) -> None: ...

class ListLutEntriesRequest(_message.Message):
    __slots__ = ("lut_name", "model", "page_size", "page_token")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    page_size: int
    page_token: str
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLutEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LutEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[LutEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteLutEntryRequest(_message.Message):
    __slots__ = ("lut_name", "model", "entry_id")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    entry_id: str
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class DeleteLutEntryResponse(_message.Message):
    __slots__ = ("lut_name", "model", "entry_id", "entry_count", "version")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    entry_id: str
    entry_count: int
    version: int
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., entry_id: _Optional[str] = ..., entry_count: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteLutRequest(_message.Message):
    __slots__ = ("lut_name", "model", "allow_missing")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    allow_missing: bool
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class DeleteLutResponse(_message.Message):
    __slots__ = ("lut_name", "models", "deleted_entry_count")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    models: _containers.RepeatedScalarFieldContainer[str]
    deleted_entry_count: int
    def __init__(self, lut_name: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., deleted_entry_count: _Optional[int] = ...) -> None: ...

class ExportLutRequest(_message.Message):
    __slots__ = ("lut_name", "model")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ExportLutResponse(_message.Message):
    __slots__ = ("lut_name", "model", "format_version", "data", "entry_count", "version")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    format_version: int
    data: bytes
    entry_count: int
    version: int
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., format_version: _Optional[int] = ..., data: _Optional[bytes] = ..., entry_count: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class ImportLutRequest(_message.Message):
    __slots__ = ("lut_name", "model", "data", "overwrite")
    LUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    lut_name: str
    model: str
    data: bytes
    overwrite: bool
    def __init__(self, lut_name: _Optional[str] = ..., model: _Optional[str] = ..., data: _Optional[bytes] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ImportLutResponse(_message.Message):
    __slots__ = ("lut",)
    LUT_FIELD_NUMBER: _ClassVar[int]
    lut: Lut
    def __init__(self, lut: _Optional[_Union[Lut, _Mapping]] = ...) -> None: ...
