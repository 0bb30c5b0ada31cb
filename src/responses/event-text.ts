import { namedEventText } from "../server/sse.js";
import type { ResponseEvent } from "./events.js";

/**
 * Serialises Responses events for the wire, each Response object once: the
 * same object rides response.created and response.in_progress, and the
 * final one response.completed and the store. It was the largest share of
 * the streaming door's own CPU. One per stream.
 */
export class EventText {
  private readonly responses = new WeakMap<object, string>();

  /** The Response object's JSON, serialised at most once. */
  response(r: object): string {
    let json = this.responses.get(r);
    if (json === undefined) {
      json = JSON.stringify(r);
      this.responses.set(r, json);
    }
    return json;
  }

  /** One event's SSE text; an event carrying a Response ({type, sequence_number, response}) reuses its JSON. */
  readonly event = (e: ResponseEvent): string => {
    const r = (e as { response?: unknown }).response;
    if (typeof r !== "object" || r === null || Object.keys(e).length !== 3) return namedEventText(e);
    return namedEventText(e, `{"type":${JSON.stringify(e.type)},"sequence_number":${e.sequence_number},"response":${this.response(r)}}`);
  };
}
