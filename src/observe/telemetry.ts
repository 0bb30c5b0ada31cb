import type { RequestTrace } from "./trace.js";

/**
 * What the core learns about a request, filled in as it goes and read once
 * at its end for the request's one log line and its span.
 */
export interface RequestFacts {
  protocol?: string;
  model?: string;
  provider?: string;
  keyId?: string;
  status?: string;
  errorKind?: string;
  attempts?: number;
  promptTokens?: number;
  completionTokens?: number;
  costUsd?: string;
  ttftMs?: number;
}

/** One request's id, trace and facts, made by the front door and handed to the core with the call. */
export interface RequestTelemetry {
  readonly requestId: string;
  readonly trace: RequestTrace;
  readonly facts: RequestFacts;
}
