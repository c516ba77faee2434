/**
 * @llmserve/client: typed @grpc/grpc-js clients of every llmserve service (generated from
 * the protos by ts-proto, under `gen`) and a thin wrapper with the same verbs as the
 * Python client.
 *
 *     import { Client } from "@llmserve/client";
 *     console.log((await new Client("127.0.0.1:50051").complete("Once upon a time")).text);
 */
export { type CallOptions, EventStream } from "./call";
export { ChatSessions, Client, type ClientOptions, DEFAULT_TIMEOUT_MS, Luts, type Options, Sae, Specialists,
         type Stubs, type Turn } from "./client";
export { Code, type DetailTypeName, type ErrorDetail, fromServiceError, fromStatus, LlmserveError } from "./errors";
export { NO_RETRY, type RetryPolicy } from "./retry";
export { type GenerationEvent, JobWatch, TextStream, type WatchEvent } from "./streams";

export * as admin from "./gen/llmserve/admin/v1/admin_service";
export * as chat from "./gen/llmserve/chat/v1/chat_service";
export * as common from "./gen/llmserve/common/v1/common";
export * as generation from "./gen/llmserve/generation/v1/generation_service";
export * as lut from "./gen/llmserve/lut/v1/lut_service";
export * as sae from "./gen/llmserve/sae/v1/sae_service";
export * as server from "./gen/llmserve/server/v1/server_service";
export * as specialist from "./gen/llmserve/specialist/v1/specialist_service";

/** The package version; its major is the proto package version (`llmserve.*.v1`). */
export const VERSION = "1.0.0";
export const API_VERSION = "v1";
