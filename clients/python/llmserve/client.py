"""The blocking client: `Client("host:port").complete("Hello").text`.

Every call takes `timeout=` (seconds, retries included); failures raise `llmserve.errors`
exceptions that carry the server's `google.rpc` details."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import grpc

from llmserve import _core, errors
from llmserve._core import DEFAULT_RETRY, DEFAULT_TIMEOUT_S, Deadline, RetryPolicy
from llmserve._stubs import (
    Stubs,
    chat_pb,
    common_pb2,
    gen_pb,
    lut_pb,
    sae_pb,
    sae_upload,
    server_pb,
    spec_pb,
    specialist_upload,
)

T = TypeVar("T")
C = TypeVar("C", bound="Client")
_DEFAULT: Any = object()
Turns = Sequence[Mapping[str, str] | tuple[str, str] | gen_pb.ChatMessage]


class _Invoker:
    """Runs calls with the client's metadata, deadline and retry policy."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], retry: RetryPolicy, timeout: float | None,
                 stream_timeout: float | None) -> None:
        self.metadata, self.retry, self.timeout, self.stream_timeout = metadata, retry, timeout, stream_timeout

    def _tries(self, deadline: Deadline, attempt: Callable[[float | None], T]) -> T:
        tries = 1
        while True:
            try:
                return attempt(deadline.remaining())
            except grpc.RpcError as exc:
                error = errors.from_rpc_error(exc)
                wait = self.retry.delay(tries, error, deadline.remaining())
                if wait is None:
                    raise error from None
            time.sleep(wait)
            tries += 1

    def unary(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        deadline = Deadline(self.timeout if timeout is _DEFAULT else timeout)
        return self._tries(deadline, lambda left: method(request, timeout=left, metadata=self.metadata))

    def open(self, method: Callable[..., Any], request: Any, timeout: float | None) -> tuple[Any, Any]:
        """A server stream and its first message: retried while nothing has arrived."""
        deadline = Deadline(self.stream_timeout if timeout is _DEFAULT else timeout)

        def attempt(left: float | None) -> tuple[Any, Any]:
            call = method(request, timeout=left, metadata=self.metadata)
            return call, next(call, None)

        return self._tries(deadline, attempt)


class _Stream(Generic[T]):
    """A server stream read lazily; `cancel()` (or leaving a `with` block) ends it."""

    def __init__(self, invoker: _Invoker, method: Callable[..., Any], request: Any, timeout: float | None,
                 read: Callable[[Any], T | None]) -> None:
        self._invoker, self._method, self._request, self._timeout, self._read = invoker, method, request, timeout, read
        self._call: Any = None
        self._cancelled = False
        self._items = self._run()

    def _run(self) -> Iterator[T]:
        call, first = self._invoker.open(self._method, self._request, self._timeout)
        self._call = call
        if first is None:
            return
        try:
            for message in itertools.chain((first,), call):
                item = self._read(message)
                if item is not None:
                    yield item
        except grpc.RpcError as exc:
            if not self._cancelled:
                raise errors.from_rpc_error(exc) from None

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._cancelled:
            raise StopIteration
        return next(self._items)

    def cancel(self) -> None:
        """Stop the stream; the server frees the generation at its next step."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> _Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class TextStream(_Stream[str]):
    """The text pieces of a generation, as they are made. Once it is read to the end,
    `final`, `usage`, `finish_reason` (and for a chat session `reply`) are set."""

    def __init__(self, invoker: _Invoker, method: Callable[..., Any], request: Any, timeout: float | None) -> None:
        self._state = _core.StreamState()
        super().__init__(invoker, method, request, timeout, self._state.text_of)

    def text(self) -> str:
        """Read the rest of the stream; the whole text."""
        for _ in self:
            pass
        return self.final.text if self.final is not None else ""

    @property
    def final(self) -> common_pb2.GenerationFinal | None:
        return self._state.final

    @property
    def usage(self) -> common_pb2.Usage | None:
        return self._state.usage

    @property
    def finish_reason(self) -> int | None:
        return self._state.finish_reason

    @property
    def reply(self) -> chat_pb.StreamedReply | None:
        return self._state.reply  # type: ignore[return-value]


class JobWatch(_Stream[Any]):
    """A job's progress events to its end; the last item (also `final`) is the terminal state."""

    def __init__(self, invoker: _Invoker, method: Callable[..., Any], request: Any, timeout: float | None) -> None:
        self._state = _core.WatchState()
        super().__init__(invoker, method, request, timeout, self._state.progress_of)

    def wait(self) -> Any:
        """Read to the end; the final event."""
        for _ in self:
            pass
        return self._state.final

    @property
    def final(self) -> Any:
        return self._state.final


class Luts:
    """Per-user lookup tables: teach a fact (`train`), generate with it (`generate`)."""

    def __init__(self, stubs: Stubs, invoker: _Invoker) -> None:
        self._stub, self._call = stubs.lut, invoker

    def train(self, lut_name: str, label: str, *, label_context: str = "", model: str = "",
              timeout: float | None = _DEFAULT) -> lut_pb.TrainLutResponse:
        request = lut_pb.TrainLutRequest(lut_name=lut_name, label=label, label_context=label_context, model=model)
        return self._call.unary(self._stub.TrainLut, request, timeout)

    def generate(self, prompt: str, *, lut_name: str = "", model: str = "", max_new_tokens: int | None = None,
                 threshold: float | None = None, temperature: float | None = None, top_k: int | None = None,
                 timeout: float | None = _DEFAULT) -> lut_pb.GenerateResponse:
        request = lut_pb.GenerateRequest(prompt=prompt, lut_name=lut_name, model=model, **_core.fields(
            max_new_tokens=max_new_tokens, threshold=threshold, temperature=temperature, top_k=top_k))
        return self._call.unary(self._stub.Generate, request, timeout)

    def stream_generate(self, prompt: str, *, lut_name: str = "", model: str = "",
                        max_new_tokens: int | None = None, threshold: float | None = None,
                        temperature: float | None = None, top_k: int | None = None,
                        timeout: float | None = _DEFAULT) -> TextStream:
        request = lut_pb.StreamGenerateRequest(prompt=prompt, lut_name=lut_name, model=model, **_core.fields(
            max_new_tokens=max_new_tokens, threshold=threshold, temperature=temperature, top_k=top_k))
        return TextStream(self._call, self._stub.StreamGenerate, request, timeout)

    def list(self, *, model: str = "", page_size: int = 0, page_token: str = "",
             timeout: float | None = _DEFAULT) -> lut_pb.ListLutsResponse:
        request = lut_pb.ListLutsRequest(model=model, page_size=page_size, page_token=page_token)
        return self._call.unary(self._stub.ListLuts, request, timeout)

    def get(self, lut_name: str, *, model: str = "", timeout: float | None = _DEFAULT) -> lut_pb.Lut:
        reply = self._call.unary(self._stub.GetLut, lut_pb.GetLutRequest(lut_name=lut_name, model=model), timeout)
        return reply.lut

    def delete(self, lut_name: str, *, model: str = "", allow_missing: bool = False,
               timeout: float | None = _DEFAULT) -> lut_pb.DeleteLutResponse:
        request = lut_pb.DeleteLutRequest(lut_name=lut_name, model=model, allow_missing=allow_missing)
        return self._call.unary(self._stub.DeleteLut, request, timeout)


class ChatSessions:
    """Stored conversations: `start`, then `send` (or `stream`) turns; replies may follow a JSON schema."""

    def __init__(self, stubs: Stubs, invoker: _Invoker) -> None:
        self._stub, self._call = stubs.chat, invoker

    def start(self, user_id: str, message: str, *, system_prompt: str | None = None, model: str | None = None,
              json_schema: str | Mapping[str, Any] | None = None, json_schema_name: str | None = None,
              max_new_tokens: int | None = None, temperature: float | None = None, top_p: float | None = None,
              top_k: int | None = None, seed: int | None = None,
              timeout: float | None = _DEFAULT) -> chat_pb.StartConversationResponse:
        request = chat_pb.StartConversationRequest(
            user_id=user_id, initial_message=message, **_core.structured_reply(json_schema, json_schema_name),
            **_core.fields(system_prompt=system_prompt, model=model, max_new_tokens=max_new_tokens,
                           temperature=temperature, top_p=top_p, top_k=top_k, seed=seed))
        return self._call.unary(self._stub.StartConversation, request, timeout)

    def send(self, session_id: str, message: str, *, json_schema: str | Mapping[str, Any] | None = None,
             json_schema_name: str | None = None, max_new_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
             seed: int | None = None, timeout: float | None = _DEFAULT) -> chat_pb.SendMessageResponse:
        request = chat_pb.SendMessageRequest(
            session_id=session_id, user_message=message, **_core.structured_reply(json_schema, json_schema_name),
            **_core.fields(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                           seed=seed))
        return self._call.unary(self._stub.SendMessage, request, timeout)

    def stream(self, session_id: str, message: str, *, json_schema: str | Mapping[str, Any] | None = None,
               json_schema_name: str | None = None, max_new_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
               seed: int | None = None, timeout: float | None = _DEFAULT) -> TextStream:
        request = chat_pb.StreamMessageRequest(
            session_id=session_id, user_message=message, **_core.structured_reply(json_schema, json_schema_name),
            **_core.fields(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                           seed=seed))
        return TextStream(self._call, self._stub.StreamMessage, request, timeout)

    def history(self, session_id: str, *, page_size: int = 0, page_token: str = "",
                timeout: float | None = _DEFAULT) -> chat_pb.GetHistoryResponse:
        request = chat_pb.GetHistoryRequest(session_id=session_id, page_size=page_size, page_token=page_token)
        return self._call.unary(self._stub.GetHistory, request, timeout)

    def get(self, session_id: str, *, timeout: float | None = _DEFAULT) -> chat_pb.ChatSession:
        reply = self._call.unary(self._stub.GetSession, chat_pb.GetSessionRequest(session_id=session_id),
                                timeout)
        return reply.session

    def list(self, *, user_id: str | None = None, page_size: int = 0, page_token: str = "",
             timeout: float | None = _DEFAULT) -> chat_pb.ListSessionsResponse:
        request = chat_pb.ListSessionsRequest(page_size=page_size, page_token=page_token,
                                              **_core.fields(user_id=user_id))
        return self._call.unary(self._stub.ListSessions, request, timeout)

    def end(self, session_id: str, *, timeout: float | None = _DEFAULT) -> chat_pb.EndConversationResponse:
        return self._call.unary(self._stub.EndConversation, chat_pb.EndConversationRequest(session_id=session_id),
                                timeout)

    def register_schema(self, name: str, json_schema: str | Mapping[str, Any], *, description: str = "",
                        replace: bool = False, timeout: float | None = _DEFAULT) -> chat_pb.JsonSchema:
        request = chat_pb.RegisterSchemaRequest(name=name, description=description, replace=replace,
                                                **_core.structured_reply(json_schema, None))
        reply = self._call.unary(self._stub.RegisterSchema, request, timeout)
        return reply.schema


class Sae:
    """Sparse-autoencoder training jobs: `upload_corpus`, `start`, `watch` to the end, `result`."""

    def __init__(self, stubs: Stubs, invoker: _Invoker) -> None:
        self._stub, self._call = stubs.sae, invoker

    def upload_corpus(self, filename: str, data: bytes, *,
                      timeout: float | None = _DEFAULT) -> sae_pb.UploadCorpusResponse:
        requests = sae_upload(filename, data)
        return self._call.unary(lambda _r, **kw: self._stub.UploadCorpus(iter(requests), **kw), None, timeout)

    def start(self, model_name: str, corpus_file: str, *, timeout: float | None = _DEFAULT,
              **options: Any) -> sae_pb.CreateTrainingJobResponse:
        """Options are CreateTrainingJobRequest's fields (layer_number, hidden_dim, max_epochs, ...)."""
        request = sae_pb.CreateTrainingJobRequest(model_name=model_name, corpus_file=corpus_file,
                                                  **_core.fields(**options))
        return self._call.unary(self._stub.CreateTrainingJob, request, timeout)

    def get(self, job_id: str, *, timeout: float | None = _DEFAULT) -> sae_pb.GetTrainingJobResponse:
        return self._call.unary(self._stub.GetTrainingJob, sae_pb.GetTrainingJobRequest(job_id=job_id), timeout)

    def watch(self, job_id: str, *, min_interval_s: float | None = None,
              timeout: float | None = _DEFAULT) -> JobWatch:
        """Progress events (`TrainingProgress`) until the job ends; the last one is final."""
        request = sae_pb.WatchTrainingJobRequest(job_id=job_id, **_core.fields(min_interval_seconds=min_interval_s))
        return JobWatch(self._call, self._stub.WatchTrainingJob, request, timeout)

    def result(self, job_id: str, *, timeout: float | None = _DEFAULT) -> sae_pb.GetTrainingResultResponse:
        return self._call.unary(self._stub.GetTrainingResult, sae_pb.GetTrainingResultRequest(job_id=job_id),
                                timeout)

    def cancel(self, job_id: str, *, timeout: float | None = _DEFAULT) -> sae_pb.CancelTrainingJobResponse:
        return self._call.unary(self._stub.CancelTrainingJob, sae_pb.CancelTrainingJobRequest(job_id=job_id),
                                timeout)

    def list(self, *, page_size: int = 0, page_token: str = "",
             timeout: float | None = _DEFAULT) -> sae_pb.ListTrainingJobsResponse:
        request = sae_pb.ListTrainingJobsRequest(page_size=page_size, page_token=page_token)
        return self._call.unary(self._stub.ListTrainingJobs, request, timeout)


class Specialists:
    """The deployment's specialist experts: generate through the mixture, manage and retrain them."""

    def __init__(self, stubs: Stubs, invoker: _Invoker) -> None:
        self._stub, self._call = stubs.specialist, invoker

    def list(self, *, timeout: float | None = _DEFAULT) -> list[spec_pb.Specialist]:
        reply = self._call.unary(self._stub.ListSpecialists, spec_pb.ListSpecialistsRequest(),
                                     timeout)
        return list(reply.specialists)

    def get(self, name: str, *, timeout: float | None = _DEFAULT) -> spec_pb.Specialist:
        reply = self._call.unary(self._stub.GetSpecialist, spec_pb.GetSpecialistRequest(name=name), timeout)
        return reply.specialist

    def add(self, name: str, *, timeout: float | None = _DEFAULT) -> spec_pb.AddSpecialistResponse:
        return self._call.unary(self._stub.AddSpecialist, spec_pb.AddSpecialistRequest(name=name), timeout)

    def upload_corpus(self, name: str, file_name: str, data: bytes, *, overwrite: bool = False,
                      timeout: float | None = _DEFAULT) -> spec_pb.UploadSpecialistCorpusResponse:
        requests = specialist_upload(name, file_name, data, overwrite)
        return self._call.unary(lambda _r, **kw: self._stub.UploadSpecialistCorpus(iter(requests), **kw), None,
                                timeout)

    def delete(self, name: str, *, timeout: float | None = _DEFAULT) -> spec_pb.DeleteSpecialistResponse:
        return self._call.unary(self._stub.DeleteSpecialist, spec_pb.DeleteSpecialistRequest(name=name), timeout)

    def generate(self, prompt: str, *, max_new_tokens: int | None = None, temperature: float | None = None,
                 top_k: int | None = None, routing_mode: int = 0, force_specialist: str = "",
                 timeout: float | None = _DEFAULT) -> spec_pb.GenerateResponse:
        request = spec_pb.GenerateRequest(prompt=prompt, routing_mode=routing_mode, force_specialist=force_specialist,
                                          **_core.fields(max_new_tokens=max_new_tokens, temperature=temperature,
                                                         top_k=top_k))
        return self._call.unary(self._stub.Generate, request, timeout)

    def stream_generate(self, prompt: str, *, max_new_tokens: int | None = None, temperature: float | None = None,
                        top_k: int | None = None, routing_mode: int = 0, force_specialist: str = "",
                        timeout: float | None = _DEFAULT) -> TextStream:
        request = spec_pb.StreamGenerateRequest(
            prompt=prompt, routing_mode=routing_mode, force_specialist=force_specialist,
            **_core.fields(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k))
        return TextStream(self._call, self._stub.StreamGenerate, request, timeout)

    def train(self, *, steps: int | None = None, timeout: float | None = _DEFAULT) -> spec_pb.TrainingJob:
        request = spec_pb.CreateTrainingJobRequest(**_core.fields(steps=steps))
        reply = self._call.unary(self._stub.CreateTrainingJob, request, timeout)
        return reply.job

    def watch(self, job_id: str, *, timeout: float | None = _DEFAULT) -> JobWatch:
        """Progress events until the job ends; the last one (a `TrainingJob`) is final."""
        return JobWatch(self._call, self._stub.WatchTrainingJob, spec_pb.WatchTrainingJobRequest(job_id=job_id),
                        timeout)


class Client:
    """A blocking llmserve client over one gRPC channel.

    `target` is "host:port"; `api_key` is sent as `authorization: Bearer <key>`; `tls` is
    False (plaintext), True (system roots) or `grpc.ChannelCredentials`; `timeout` is the
    default deadline of unary calls and `stream_timeout` of streams (None: no deadline);
    `retry` says which failures are tried again (`llmserve.NO_RETRY` never)."""

    def __init__(self, target: str = "127.0.0.1:50051", *, api_key: str | None = None,
                 tls: bool | grpc.ChannelCredentials = False, timeout: float | None = DEFAULT_TIMEOUT_S,
                 stream_timeout: float | None = None, retry: RetryPolicy = DEFAULT_RETRY,
                 metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                 channel_options: Sequence[tuple[str, Any]] = ()) -> None:
        creds = _core.credentials(tls)
        options = _core.channel_options(channel_options)
        self.channel = (grpc.secure_channel(target, creds, options=options) if creds
                        else grpc.insecure_channel(target, options=options))
        self.stubs = Stubs(self.channel)
        self._call = _Invoker(_core.call_metadata(api_key, metadata), retry, timeout, stream_timeout)
        self.lut = Luts(self.stubs, self._call)
        self.chat_sessions = ChatSessions(self.stubs, self._call)
        self.sae = Sae(self.stubs, self._call)
        self.specialists = Specialists(self.stubs, self._call)

    def complete(self, prompt: str, *, model: str = "", max_new_tokens: int | None = None,
                 temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                 repetition_penalty: float | None = None, do_sample: bool | None = None,
                 stop: Sequence[str] | None = None, seed: int | None = None,
                 timeout: float | None = _DEFAULT) -> gen_pb.CompleteResponse:
        request = gen_pb.CompleteRequest(prompt=prompt, model=model, **_core.sampling(
            max_new_tokens, temperature, top_p, top_k, repetition_penalty, do_sample, stop, seed))
        return self._call.unary(self.stubs.generation.Complete, request, timeout)

    def stream_complete(self, prompt: str, *, model: str = "", max_new_tokens: int | None = None,
                        temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                        repetition_penalty: float | None = None, do_sample: bool | None = None,
                        stop: Sequence[str] | None = None, seed: int | None = None,
                        timeout: float | None = _DEFAULT) -> TextStream:
        request = gen_pb.StreamCompleteRequest(prompt=prompt, model=model, **_core.sampling(
            max_new_tokens, temperature, top_p, top_k, repetition_penalty, do_sample, stop, seed))
        return TextStream(self._call, self.stubs.generation.StreamComplete, request, timeout)

    def chat(self, messages: Turns, *, model: str = "", max_new_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
             repetition_penalty: float | None = None, do_sample: bool | None = None,
             stop: Sequence[str] | None = None, seed: int | None = None,
             timeout: float | None = _DEFAULT) -> gen_pb.ChatResponse:
        request = gen_pb.ChatRequest(messages=_core.messages(messages, gen_pb.ChatMessage), model=model,
                                     **_core.sampling(max_new_tokens, temperature, top_p, top_k,
                                                      repetition_penalty, do_sample, stop, seed))
        return self._call.unary(self.stubs.generation.Chat, request, timeout)

    def stream_chat(self, messages: Turns, *, model: str = "", max_new_tokens: int | None = None,
                    temperature: float | None = None, top_p: float | None = None, top_k: int | None = None,
                    repetition_penalty: float | None = None, do_sample: bool | None = None,
                    stop: Sequence[str] | None = None, seed: int | None = None,
                    timeout: float | None = _DEFAULT) -> TextStream:
        request = gen_pb.StreamChatRequest(messages=_core.messages(messages, gen_pb.ChatMessage), model=model,
                                           **_core.sampling(max_new_tokens, temperature, top_p, top_k,
                                                            repetition_penalty, do_sample, stop, seed))
        return TextStream(self._call, self.stubs.generation.StreamChat, request, timeout)

    def models(self, *, timeout: float | None = _DEFAULT) -> list[gen_pb.Model]:
        reply = self._call.unary(self.stubs.generation.ListModels, gen_pb.ListModelsRequest(), timeout)
        return list(reply.models)

    def health(self, *, timeout: float | None = _DEFAULT) -> server_pb.GetHealthResponse:
        return self._call.unary(self.stubs.server.GetHealth, server_pb.GetHealthRequest(), timeout)

    def call(self, method: Callable[..., T], request: Any, *, timeout: float | None = _DEFAULT) -> T:
        """Any unary RPC of `stubs` with this client's key, deadline, retries and exceptions,
        e.g. `client.call(client.stubs.lut.ExportLut, lut_pb.ExportLutRequest(lut_name="u1"))`."""
        return self._call.unary(method, request, timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
