/** The two kinds of stream the wrapper returns: generated text, and a job watched to its end. */
import type { Invoker, CallOptions, StreamMethod } from "./call";
import { EventStream } from "./call";
import { fromStatus } from "./errors";
import type { StreamedReply } from "./gen/llmserve/chat/v1/chat_service";
import type { FinishReason, GenerationFinal, StreamError, TokenDelta, Usage } from "./gen/llmserve/common/v1/common";

/** The events every generation stream sends: deltas, then one final or one error. */
export interface GenerationEvent {
  delta?: TokenDelta | undefined;
  final?: GenerationFinal | undefined;
  error?: StreamError | undefined;
  reply?: StreamedReply | undefined;
}

/**
 * The text pieces of a generation, as they are made (`for await (const piece of stream)`).
 * Once read to the end, `final`, `usage`, `finishReason` (and for a chat session `reply`) are set.
 */
export class TextStream extends EventStream<GenerationEvent, string> {
  final: GenerationFinal | undefined;
  reply: StreamedReply | undefined;

  constructor(invoker: Invoker, method: StreamMethod<any, GenerationEvent>, request: unknown, options: CallOptions) {
    super(invoker, method, request, options, (event) => this.take(event));
  }

  private take(event: GenerationEvent): string | undefined {
    if (event.delta) return event.delta.text;
    if (event.final) this.final = event.final;
    if (event.reply) this.reply = event.reply;
    if (event.error) throw fromStatus(event.error.status ?? { code: 2, message: "stream error", details: [] });
    return undefined;
  }

  get usage(): Usage | undefined {
    return this.final?.usage;
  }

  get finishReason(): FinishReason | undefined {
    return this.final?.finishReason;
  }

  /** Read the rest of the stream; the whole text. */
  async text(): Promise<string> {
    for await (const _ of this) {
      // each piece is also in final.text
    }
    return this.final?.text ?? "";
  }
}

/** The events of a job watch: progress, then one final (or one error). */
export interface WatchEvent<P, F> {
  progress?: P | undefined;
  final?: F | undefined;
  error?: StreamError | undefined;
}

/** A job's progress events to its end; the last item (also `final`) is the terminal state. */
export class JobWatch<P, F> extends EventStream<WatchEvent<P, F>, P | F> {
  final: F | undefined;

  constructor(invoker: Invoker, method: StreamMethod<any, WatchEvent<P, F>>, request: unknown, options: CallOptions) {
    super(invoker, method, request, options, (event) => {
      if (event.error) throw fromStatus(event.error.status ?? { code: 2, message: "stream error", details: [] });
      if (event.final) this.final = event.final;
      return event.final ?? event.progress;
    });
  }

  /** Read to the end; the final event. */
  async wait(): Promise<F | undefined> {
    for await (const _ of this) {
      // progress events are skipped
    }
    return this.final;
  }
}
