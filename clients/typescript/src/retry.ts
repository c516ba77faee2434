/**
 * When and how long to wait before trying a failed call again. UNAVAILABLE is retried with
 * jittered exponential backoff. RESOURCE_EXHAUSTED is retried only when the server said
 * when (a google.rpc.RetryInfo with a positive delay, as a rate or concurrency quota does),
 * after that delay; a refusal without one (a storage quota) cannot get better by waiting.
 * No retry is made that would end past the deadline. Streams are retried only while no
 * message has arrived.
 */
import { status as Code } from "@grpc/grpc-js";

import type { LlmserveError } from "./errors";

export interface RetryPolicy {
  /** Tries in all, the first included (1: never retry). Default 4. */
  maxAttempts?: number;
  /** Wait before the second try of an UNAVAILABLE call. Default 200 ms. */
  initialBackoffMs?: number;
  /** Longest backoff between tries. Default 5000 ms. */
  maxBackoffMs?: number;
  /** Growth of the backoff per try. Default 2. */
  multiplier?: number;
  /** Longest server-requested wait honoured; a longer RetryInfo ends the call at once. Default 60000 ms. */
  maxRetryDelayMs?: number;
  /** Status codes that may be retried. Default UNAVAILABLE and RESOURCE_EXHAUSTED. */
  codes?: Code[];
  /** Called with the error and the wait before each retry (to log or count them). */
  onRetry?: (error: LlmserveError, waitMs: number) => void;
}

export const NO_RETRY: RetryPolicy = { maxAttempts: 1 };

/** Milliseconds to wait before try `attempt + 1` after `error`, or undefined to give up. */
export function retryDelayMs(policy: RetryPolicy, attempt: number, error: LlmserveError,
                             remainingMs: number | undefined): number | undefined {
  const codes = policy.codes ?? [Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED];
  if (attempt >= (policy.maxAttempts ?? 4) || !codes.includes(error.code)) return undefined;
  const asked = error.retryDelayMs;
  if (error.code === Code.RESOURCE_EXHAUSTED && !asked) return undefined;
  let wait: number;
  if (asked) {
    if (asked > (policy.maxRetryDelayMs ?? 60_000)) return undefined;
    wait = asked;
  } else {
    const backoff = Math.min(policy.maxBackoffMs ?? 5_000,
                             (policy.initialBackoffMs ?? 200) * (policy.multiplier ?? 2) ** (attempt - 1));
    wait = backoff / 2 + Math.random() * (backoff / 2);
  }
  if (remainingMs !== undefined && wait >= remainingMs) return undefined;
  policy.onRetry?.(error, wait);
  return wait;
}
