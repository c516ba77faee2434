/**
 * The wrapper: `await new Client("127.0.0.1:50051").complete("Hello")`. Every verb is one
 * request message and one call; options are the request's fields (camelCase) plus
 * `timeoutMs` and `signal`. Failures reject with `LlmserveError`, carrying the server's
 * google.rpc details.
 */
import { ChannelCredentials, type ChannelOptions, credentials, Metadata } from "@grpc/grpc-js";

import { type CallOptions, Invoker, type StreamMethod, type UnaryMethod } from "./call";
import * as admin from "./gen/llmserve/admin/v1/admin_service";
import * as chat from "./gen/llmserve/chat/v1/chat_service";
import * as generation from "./gen/llmserve/generation/v1/generation_service";
import * as lut from "./gen/llmserve/lut/v1/lut_service";
import * as sae from "./gen/llmserve/sae/v1/sae_service";
import * as server from "./gen/llmserve/server/v1/server_service";
import * as specialist from "./gen/llmserve/specialist/v1/specialist_service";
import type { RetryPolicy } from "./retry";
import { JobWatch, TextStream } from "./streams";

export const DEFAULT_TIMEOUT_MS = 60_000;
/** Bytes per message of a corpus upload (well under gRPC's 4 MiB message limit). */
const UPLOAD_CHUNK_BYTES = 1 << 20;

/** A verb's options: the request's fields but those given positionally, plus call options. */
export type Options<Req, Positional extends keyof Req = never> = Partial<Omit<Req, Positional>> & CallOptions;
/** A chat turn: a message, or a [role, content] pair. */
export type Turn = generation.ChatMessage | [string, string];

export interface ClientOptions {
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey?: string;
  /** false (plaintext, the default), true (TLS with the system roots) or credentials. */
  tls?: boolean | ChannelCredentials;
  /** Default deadline of unary calls in milliseconds; null: none. Default 60000. */
  timeoutMs?: number | null;
  /** Default deadline of streams in milliseconds; null (the default): none. */
  streamTimeoutMs?: number | null;
  /** Which failures are tried again, and how (`NO_RETRY`: never). */
  retry?: RetryPolicy;
  /** Extra metadata sent on every call. */
  metadata?: Record<string, string>;
  /** @grpc/grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

/** The server's limit on one message each way (64 MiB). */
export const MESSAGE_LIMIT_BYTES = 64 * 1024 * 1024;

/** The typed @grpc/grpc-js clients of every service, for calls the wrapper does not cover. */
export interface Stubs {
  generation: generation.GenerationServiceClient;
  lut: lut.LutServiceClient;
  chat: chat.ChatServiceClient;
  sae: sae.SaeTrainingServiceClient;
  specialist: specialist.SpecialistServiceClient;
  server: server.ServerServiceClient;
  admin: admin.AdminServiceClient;
}

function unary<Req, Res>(stub: object, method: (...args: any[]) => any): UnaryMethod<Req, Res> {
  return method.bind(stub) as UnaryMethod<Req, Res>;
}

function stream<Req, Res>(stub: object, method: (...args: any[]) => any): StreamMethod<Req, Res> {
  return method.bind(stub) as StreamMethod<Req, Res>;
}

function chunks(data: Uint8Array): Buffer[] {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  for (let i = 0; i < bytes.length; i += UPLOAD_CHUNK_BYTES) out.push(bytes.subarray(i, i + UPLOAD_CHUNK_BYTES));
  return out;
}

/** A client-streaming upload of a fixed list of messages, retried as a whole. */
function upload<Req, Res>(stub: object, method: (...args: any[]) => any, messages: Req[]): UnaryMethod<null, Res> {
  return (_request, metadata, options, callback) => {
    const call = method.call(stub, metadata, options, callback);
    for (const message of messages) call.write(message);
    call.end();
    return call;
  };
}

/** Per-user lookup tables: teach a fact (`train`), generate with it (`generate`). */
export class Luts {
  constructor(private readonly stub: lut.LutServiceClient, private readonly invoker: Invoker) {}

  train(lutName: string, label: string, options: Options<lut.TrainLutRequest, "lutName" | "label"> = {}
       ): Promise<lut.TrainLutResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.trainLut),
                              lut.TrainLutRequest.fromPartial({ ...options, lutName, label }), options);
  }

  generate(prompt: string, options: Options<lut.GenerateRequest, "prompt"> = {}): Promise<lut.GenerateResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.generate),
                              lut.GenerateRequest.fromPartial({ ...options, prompt }), options);
  }

  streamGenerate(prompt: string, options: Options<lut.StreamGenerateRequest, "prompt"> = {}): TextStream {
    return new TextStream(this.invoker, stream(this.stub, this.stub.streamGenerate),
                          lut.StreamGenerateRequest.fromPartial({ ...options, prompt }), options);
  }

  list(options: Options<lut.ListLutsRequest> = {}): Promise<lut.ListLutsResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.listLuts), lut.ListLutsRequest.fromPartial(options), options);
  }

  async get(lutName: string, options: Options<lut.GetLutRequest, "lutName"> = {}): Promise<lut.Lut | undefined> {
    const reply = await this.invoker.unary<lut.GetLutRequest, lut.GetLutResponse>(
      unary(this.stub, this.stub.getLut), lut.GetLutRequest.fromPartial({ ...options, lutName }), options);
    return reply.lut;
  }

  delete(lutName: string, options: Options<lut.DeleteLutRequest, "lutName"> = {}): Promise<lut.DeleteLutResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.deleteLut),
                              lut.DeleteLutRequest.fromPartial({ ...options, lutName }), options);
  }
}

/** A reply schema: a JSON-schema object or its JSON text (`jsonSchema`), or a registered name. */
type SchemaOption = { jsonSchema?: string | object; jsonSchemaName?: string };

/** The options with a schema object turned into the JSON text the request carries. */
function withSchema<O extends SchemaOption>(options: O): Omit<O, "jsonSchema"> & { jsonSchema?: string } {
  const { jsonSchema, ...rest } = options;
  if (jsonSchema === undefined) return rest;
  return { ...rest, jsonSchema: typeof jsonSchema === "string" ? jsonSchema : JSON.stringify(jsonSchema) };
}

/** Stored conversations: `start`, then `send` (or `stream`) turns; replies may follow a JSON schema. */
export class ChatSessions {
  constructor(private readonly stub: chat.ChatServiceClient, private readonly invoker: Invoker) {}

  start(userId: string, message: string,
        options: Omit<Options<chat.StartConversationRequest, "userId" | "initialMessage">, "jsonSchema"> & SchemaOption = {}
       ): Promise<chat.StartConversationResponse> {
    const request = chat.StartConversationRequest.fromPartial({ ...withSchema(options), userId,
                                                                initialMessage: message });
    return this.invoker.unary(unary(this.stub, this.stub.startConversation), request, options);
  }

  send(sessionId: string, message: string,
       options: Omit<Options<chat.SendMessageRequest, "sessionId" | "userMessage">, "jsonSchema"> & SchemaOption = {}
      ): Promise<chat.SendMessageResponse> {
    const request = chat.SendMessageRequest.fromPartial({ ...withSchema(options), sessionId,
                                                          userMessage: message });
    return this.invoker.unary(unary(this.stub, this.stub.sendMessage), request, options);
  }

  stream(sessionId: string, message: string,
         options: Omit<Options<chat.StreamMessageRequest, "sessionId" | "userMessage">, "jsonSchema"> & SchemaOption = {}
        ): TextStream {
    const request = chat.StreamMessageRequest.fromPartial({ ...withSchema(options), sessionId,
                                                            userMessage: message });
    return new TextStream(this.invoker, stream(this.stub, this.stub.streamMessage), request, options);
  }

  history(sessionId: string, options: Options<chat.GetHistoryRequest, "sessionId"> = {}
         ): Promise<chat.GetHistoryResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.getHistory),
                              chat.GetHistoryRequest.fromPartial({ ...options, sessionId }), options);
  }

  async get(sessionId: string, options: CallOptions = {}): Promise<chat.ChatSession | undefined> {
    const reply = await this.invoker.unary<chat.GetSessionRequest, chat.GetSessionResponse>(
      unary(this.stub, this.stub.getSession), chat.GetSessionRequest.fromPartial({ sessionId }), options);
    return reply.session;
  }

  list(options: Options<chat.ListSessionsRequest> = {}): Promise<chat.ListSessionsResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.listSessions), chat.ListSessionsRequest.fromPartial(options),
                              options);
  }

  end(sessionId: string, options: CallOptions = {}): Promise<chat.EndConversationResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.endConversation),
                              chat.EndConversationRequest.fromPartial({ sessionId }), options);
  }
}

/** Sparse-autoencoder training jobs: `uploadCorpus`, `start`, `watch` to the end, `result`. */
export class Sae {
  constructor(private readonly stub: sae.SaeTrainingServiceClient, private readonly invoker: Invoker) {}

  uploadCorpus(filename: string, data: Uint8Array, options: CallOptions = {}): Promise<sae.UploadCorpusResponse> {
    const messages = [sae.UploadCorpusRequest.fromPartial({ filename }),
                      ...chunks(data).map((chunk) => sae.UploadCorpusRequest.fromPartial({ chunk }))];
    return this.invoker.unary(upload(this.stub, this.stub.uploadCorpus, messages), null, options);
  }

  start(modelName: string, corpusFile: string,
        options: Options<sae.CreateTrainingJobRequest, "modelName" | "corpusFile"> = {}
       ): Promise<sae.CreateTrainingJobResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.createTrainingJob),
                              sae.CreateTrainingJobRequest.fromPartial({ ...options, modelName, corpusFile }), options);
  }

  get(jobId: string, options: CallOptions = {}): Promise<sae.GetTrainingJobResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.getTrainingJob),
                              sae.GetTrainingJobRequest.fromPartial({ jobId }), options);
  }

  /** Progress events (`TrainingProgress`) until the job ends; the last one is final. */
  watch(jobId: string, options: Options<sae.WatchTrainingJobRequest, "jobId"> = {}
       ): JobWatch<sae.TrainingProgress, sae.TrainingProgress> {
    return new JobWatch(this.invoker, stream(this.stub, this.stub.watchTrainingJob),
                        sae.WatchTrainingJobRequest.fromPartial({ ...options, jobId }), options);
  }

  result(jobId: string, options: CallOptions = {}): Promise<sae.GetTrainingResultResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.getTrainingResult),
                              sae.GetTrainingResultRequest.fromPartial({ jobId }), options);
  }

  cancel(jobId: string, options: CallOptions = {}): Promise<sae.CancelTrainingJobResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.cancelTrainingJob),
                              sae.CancelTrainingJobRequest.fromPartial({ jobId }), options);
  }

  list(options: Options<sae.ListTrainingJobsRequest> = {}): Promise<sae.ListTrainingJobsResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.listTrainingJobs),
                              sae.ListTrainingJobsRequest.fromPartial(options), options);
  }
}

/** The deployment's specialist experts: generate through the mixture, manage and retrain them. */
export class Specialists {
  constructor(private readonly stub: specialist.SpecialistServiceClient, private readonly invoker: Invoker) {}

  async list(options: CallOptions = {}): Promise<specialist.Specialist[]> {
    const reply = await this.invoker.unary<specialist.ListSpecialistsRequest, specialist.ListSpecialistsResponse>(
      unary(this.stub, this.stub.listSpecialists), specialist.ListSpecialistsRequest.fromPartial({}), options);
    return reply.specialists;
  }

  async get(name: string, options: CallOptions = {}): Promise<specialist.Specialist | undefined> {
    const reply = await this.invoker.unary<specialist.GetSpecialistRequest, specialist.GetSpecialistResponse>(
      unary(this.stub, this.stub.getSpecialist), specialist.GetSpecialistRequest.fromPartial({ name }), options);
    return reply.specialist;
  }

  add(name: string, options: CallOptions = {}): Promise<specialist.AddSpecialistResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.addSpecialist),
                              specialist.AddSpecialistRequest.fromPartial({ name }), options);
  }

  uploadCorpus(name: string, fileName: string, data: Uint8Array, options: CallOptions & { overwrite?: boolean } = {}
              ): Promise<specialist.UploadSpecialistCorpusResponse> {
    const [first = Buffer.alloc(0), ...rest] = chunks(data);
    const messages = [
      specialist.UploadSpecialistCorpusRequest.fromPartial({ name, fileName, overwrite: options.overwrite ?? false,
                                                             chunk: { data: first } }),
      ...rest.map((c) => specialist.UploadSpecialistCorpusRequest.fromPartial({ chunk: { data: c } })),
    ];
    return this.invoker.unary(upload(this.stub, this.stub.uploadSpecialistCorpus, messages), null, options);
  }

  delete(name: string, options: CallOptions = {}): Promise<specialist.DeleteSpecialistResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.deleteSpecialist),
                              specialist.DeleteSpecialistRequest.fromPartial({ name }), options);
  }

  generate(prompt: string, options: Options<specialist.GenerateRequest, "prompt"> = {}
          ): Promise<specialist.GenerateResponse> {
    return this.invoker.unary(unary(this.stub, this.stub.generate),
                              specialist.GenerateRequest.fromPartial({ ...options, prompt }), options);
  }

  streamGenerate(prompt: string, options: Options<specialist.StreamGenerateRequest, "prompt"> = {}): TextStream {
    return new TextStream(this.invoker, stream(this.stub, this.stub.streamGenerate),
                          specialist.StreamGenerateRequest.fromPartial({ ...options, prompt }), options);
  }

  async train(options: Options<specialist.CreateTrainingJobRequest> = {}): Promise<specialist.TrainingJob | undefined> {
    const reply = await this.invoker.unary<specialist.CreateTrainingJobRequest, specialist.CreateTrainingJobResponse>(
      unary(this.stub, this.stub.createTrainingJob), specialist.CreateTrainingJobRequest.fromPartial(options), options);
    return reply.job;
  }

  /** Progress events until the job ends; the last one (a `TrainingJob`) is final. */
  watch(jobId: string, options: CallOptions = {}): JobWatch<specialist.TrainingJobProgress, specialist.TrainingJob> {
    return new JobWatch(this.invoker, stream(this.stub, this.stub.watchTrainingJob),
                        specialist.WatchTrainingJobRequest.fromPartial({ jobId }), options);
  }
}

function turns(messages: Turn[]): generation.ChatMessage[] {
  return messages.map((m) => (Array.isArray(m) ? { role: m[0], content: m[1] } : m));
}

export class Client {
  readonly stubs: Stubs;
  readonly lut: Luts;
  readonly chatSessions: ChatSessions;
  readonly sae: Sae;
  readonly specialists: Specialists;
  private readonly invoker: Invoker;

  constructor(target = "127.0.0.1:50051", options: ClientOptions = {}) {
    const tls = options.tls ?? false;
    const creds = tls === true ? credentials.createSsl() : tls === false ? credentials.createInsecure() : tls;
    // The server's message limits: a LUT export of thousands of entries is past grpc-js's 4 MiB default.
    const channel: ChannelOptions = {
      "grpc.max_receive_message_length": MESSAGE_LIMIT_BYTES,
      "grpc.max_send_message_length": MESSAGE_LIMIT_BYTES,
      ...(options.channelOptions ?? {}),
    };
    this.stubs = {
      generation: new generation.GenerationServiceClient(target, creds, channel),
      lut: new lut.LutServiceClient(target, creds, channel),
      chat: new chat.ChatServiceClient(target, creds, channel),
      sae: new sae.SaeTrainingServiceClient(target, creds, channel),
      specialist: new specialist.SpecialistServiceClient(target, creds, channel),
      server: new server.ServerServiceClient(target, creds, channel),
      admin: new admin.AdminServiceClient(target, creds, channel),
    };
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
    if (options.apiKey) metadata.set("authorization", `Bearer ${options.apiKey}`);
    this.invoker = new Invoker(metadata, options.retry ?? {},
                               options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs,
                               options.streamTimeoutMs ?? null);
    this.lut = new Luts(this.stubs.lut, this.invoker);
    this.chatSessions = new ChatSessions(this.stubs.chat, this.invoker);
    this.sae = new Sae(this.stubs.sae, this.invoker);
    this.specialists = new Specialists(this.stubs.specialist, this.invoker);
  }

  complete(prompt: string, options: Options<generation.CompleteRequest, "prompt"> = {}
          ): Promise<generation.CompleteResponse> {
    const g = this.stubs.generation;
    return this.invoker.unary(unary(g, g.complete), generation.CompleteRequest.fromPartial({ ...options, prompt }),
                              options);
  }

  streamComplete(prompt: string, options: Options<generation.StreamCompleteRequest, "prompt"> = {}): TextStream {
    const g = this.stubs.generation;
    return new TextStream(this.invoker, stream(g, g.streamComplete),
                          generation.StreamCompleteRequest.fromPartial({ ...options, prompt }), options);
  }

  chat(messages: Turn[], options: Options<generation.ChatRequest, "messages"> = {}): Promise<generation.ChatResponse> {
    const g = this.stubs.generation;
    return this.invoker.unary(unary(g, g.chat),
                              generation.ChatRequest.fromPartial({ ...options, messages: turns(messages) }), options);
  }

  streamChat(messages: Turn[], options: Options<generation.StreamChatRequest, "messages"> = {}): TextStream {
    const g = this.stubs.generation;
    return new TextStream(this.invoker, stream(g, g.streamChat),
                          generation.StreamChatRequest.fromPartial({ ...options, messages: turns(messages) }), options);
  }

  async models(options: CallOptions = {}): Promise<generation.Model[]> {
    const g = this.stubs.generation;
    const reply = await this.invoker.unary<generation.ListModelsRequest, generation.ListModelsResponse>(
      unary(g, g.listModels), generation.ListModelsRequest.fromPartial({}), options);
    return reply.models;
  }

  health(options: CallOptions = {}): Promise<server.GetHealthResponse> {
    const s = this.stubs.server;
    return this.invoker.unary(unary(s, s.getHealth), server.GetHealthRequest.fromPartial({}), options);
  }

  /** Any unary RPC of `stubs` with this client's key, deadline, retries and errors. */
  call<Req, Res>(stub: object, method: (...args: any[]) => any, request: Req, options: CallOptions = {}): Promise<Res> {
    return this.invoker.unary(unary<Req, Res>(stub, method), request, options);
  }

  close(): void {
    for (const stub of Object.values(this.stubs)) stub.close();
  }
}
