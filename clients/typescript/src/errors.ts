/**
 * A failed call: its gRPC status code and message, and the google.rpc details the server
 * attached (BadRequest, ResourceInfo, RetryInfo, QuotaFailure, PreconditionFailure,
 * RequestInfo), decoded from the `grpc-status-details-bin` trailer.
 */
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";

import type { Any } from "./gen/google/protobuf/any";
import {
  BadRequest,
  ErrorInfo,
  PreconditionFailure,
  QuotaFailure,
  RequestInfo,
  ResourceInfo,
  RetryInfo,
} from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

export { status as Code } from "@grpc/grpc-js";

/** The google.rpc detail types this client decodes, by their full protobuf name. */
const DETAIL_TYPES = {
  "google.rpc.BadRequest": BadRequest,
  "google.rpc.ErrorInfo": ErrorInfo,
  "google.rpc.PreconditionFailure": PreconditionFailure,
  "google.rpc.QuotaFailure": QuotaFailure,
  "google.rpc.RequestInfo": RequestInfo,
  "google.rpc.ResourceInfo": ResourceInfo,
  "google.rpc.RetryInfo": RetryInfo,
} as const;

type DetailTypes = typeof DETAIL_TYPES;
export type DetailTypeName = keyof DetailTypes;
type Decoded<K extends DetailTypeName> = ReturnType<DetailTypes[K]["decode"]>;

/** One decoded detail: its protobuf type name and message. */
export type ErrorDetail = { [K in DetailTypeName]: { type: K; value: Decoded<K> } }[DetailTypeName];

const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export class LlmserveError extends Error {
  /** The gRPC status code (`Code.INVALID_ARGUMENT`, ...). */
  readonly code: Code;
  readonly details: ErrorDetail[];

  constructor(code: Code, message: string, details: ErrorDetail[] = []) {
    super(message);
    this.name = "LlmserveError";
    this.code = code;
    this.details = details;
  }

  /** The status code's name, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return Code[this.code] ?? "UNKNOWN";
  }

  /** The first detail of the given type, or undefined. */
  detail<K extends DetailTypeName>(type: K): Decoded<K> | undefined {
    const found = this.details.find((d) => d.type === type);
    return found ? (found.value as Decoded<K>) : undefined;
  }

  /** Bad request fields, as the server named them, to what is wrong with each. */
  get fieldViolations(): Record<string, string> {
    const bad = this.detail("google.rpc.BadRequest");
    return Object.fromEntries((bad?.fieldViolations ?? []).map((v) => [v.field, v.description]));
  }

  /** Milliseconds the server asked the client to wait before retrying (RetryInfo). */
  get retryDelayMs(): number | undefined {
    const delay = this.detail("google.rpc.RetryInfo")?.retryDelay;
    return delay ? delay.seconds * 1000 + delay.nanos / 1e6 : undefined;
  }

  /** The id under which the server logged an internal error (RequestInfo). */
  get requestId(): string | undefined {
    return this.detail("google.rpc.RequestInfo")?.requestId;
  }
}

function decodeDetail(any: Any): ErrorDetail | undefined {
  const type = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
  const messageType = DETAIL_TYPES[type as DetailTypeName];
  // A detail type this client does not know is left out rather than guessed at.
  return messageType ? ({ type, value: messageType.decode(any.value) } as ErrorDetail) : undefined;
}

/** The error for a `google.rpc.Status` (a stream's in-band error event). */
export function fromStatus(status: Status): LlmserveError {
  const details = status.details.map(decodeDetail).filter((d): d is ErrorDetail => d !== undefined);
  return new LlmserveError(status.code as Code, status.message, details);
}

/** The error for a failed @grpc/grpc-js call, details read from its trailers. */
export function fromServiceError(error: ServiceError | Error): LlmserveError {
  if (error instanceof LlmserveError) return error;
  const service = error as Partial<ServiceError>;
  const code = (service.code ?? Code.UNKNOWN) as Code;
  const message = service.details ?? error.message;
  const raw = service.metadata instanceof Metadata ? service.metadata.get(STATUS_DETAILS_KEY)[0] : undefined;
  if (raw instanceof Buffer) {
    const status = Status.decode(raw);
    if (status.code === code) return fromStatus({ ...status, message: status.message || message });
  }
  return new LlmserveError(code, message);
}
