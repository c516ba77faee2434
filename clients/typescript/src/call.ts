/**
 * How the wrapper runs a call: the client's metadata (API key), one deadline over all
 * tries, retries by the policy, cancellation through an AbortSignal, and server streams
 * read as async iterators.
 */
import {
  type CallOptions as GrpcCallOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  Metadata,
  status as Code,
  type ServiceError,
} from "@grpc/grpc-js";

import { fromServiceError, LlmserveError } from "./errors";
import { retryDelayMs, type RetryPolicy } from "./retry";

/** Per-call options every verb takes. */
export interface CallOptions {
  /** Deadline in milliseconds over all tries; null: none. Default: the client's. */
  timeoutMs?: number | null;
  /** Aborting cancels the call: a unary call rejects with CANCELLED, a stream ends. */
  signal?: AbortSignal;
}

export type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<GrpcCallOptions>,
                                     callback: (error: ServiceError | null, response: Res) => void) => ClientUnaryCall;
export type StreamMethod<Req, Res> = (request: Req, metadata: Metadata,
                                      options?: Partial<GrpcCallOptions>) => ClientReadableStream<Res>;

class Deadline {
  private readonly end: number | undefined;

  constructor(timeoutMs: number | null | undefined) {
    this.end = timeoutMs == null ? undefined : Date.now() + timeoutMs;
  }

  remainingMs(): number | undefined {
    return this.end === undefined ? undefined : Math.max(0, this.end - Date.now());
  }

  options(): Partial<GrpcCallOptions> {
    return this.end === undefined ? {} : { deadline: new Date(this.end) };
  }
}

function aborted(): LlmserveError {
  return new LlmserveError(Code.CANCELLED, "the call was aborted");
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export class Invoker {
  constructor(readonly metadata: Metadata, readonly retry: RetryPolicy, readonly timeoutMs: number | null,
              readonly streamTimeoutMs: number | null) {}

  private async tries<T>(deadline: Deadline, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      if (signal?.aborted) throw aborted();
      try {
        return await attempt();
      } catch (caught) {
        const error = fromServiceError(caught as Error);
        if (signal?.aborted) throw aborted();
        const wait = retryDelayMs(this.retry, tries, error, deadline.remainingMs());
        if (wait === undefined) throw error;
        await sleep(wait, signal);
      }
    }
  }

  unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: CallOptions = {}): Promise<Res> {
    const deadline = new Deadline(options.timeoutMs === undefined ? this.timeoutMs : options.timeoutMs);
    const { signal } = options;
    return this.tries(deadline, signal, () => new Promise<Res>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = method(request, this.metadata, deadline.options(), (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve(response);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    }));
  }

  /** A server stream and its first message: retried while nothing has arrived. */
  open<Req, Res>(method: StreamMethod<Req, Res>, request: Req, options: CallOptions
                ): Promise<{ call: ClientReadableStream<Res>; events: AsyncIterator<Res>; first: IteratorResult<Res> }> {
    const deadline = new Deadline(options.timeoutMs === undefined ? this.streamTimeoutMs : options.timeoutMs);
    return this.tries(deadline, options.signal, async () => {
      const call = method(request, this.metadata, deadline.options());
      const events = call[Symbol.asyncIterator]() as AsyncIterator<Res>;
      const onAbort = () => call.cancel();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        return { call, events, first: await events.next() };
      } catch (error) {
        options.signal?.removeEventListener("abort", onAbort);
        throw error;
      }
    });
  }
}

/**
 * A server stream read lazily as an async iterator of items; `cancel()`, an aborted
 * signal or leaving a `for await` loop early ends it (and the server frees the work).
 */
export class EventStream<Res, T> implements AsyncIterable<T> {
  private call: ClientReadableStream<Res> | undefined;
  private cancelled = false;
  private started = false;

  constructor(private readonly invoker: Invoker, private readonly method: StreamMethod<any, Res>,
              private readonly request: unknown, private readonly options: CallOptions,
              private readonly read: (event: Res) => T | undefined) {}

  cancel(): void {
    this.cancelled = true;
    this.call?.cancel();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.started) throw new Error("a stream can be read once");
    this.started = true;
    const { signal } = this.options;
    const onAbort = () => this.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    let ended = false;
    try {
      let opened;
      try {
        opened = await this.invoker.open(this.method, this.request, this.options);
      } catch (error) {
        if (this.cancelled) return;
        throw error;
      }
      this.call = opened.call;
      if (this.cancelled) {
        opened.call.cancel();
        return;
      }
      for (let next = opened.first; !next.done; next = await opened.events.next()) {
        const item = this.read(next.value);
        if (item !== undefined) yield item;
        if (this.cancelled) return;  // events already buffered are not handed out after a cancel
      }
      ended = true;
    } catch (error) {
      if (this.cancelled) return;
      throw error instanceof LlmserveError ? error : fromServiceError(error as Error);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!ended && !this.cancelled) this.call?.cancel();
    }
  }
}
