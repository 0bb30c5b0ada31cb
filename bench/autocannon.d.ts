// Just enough of autocannon 8's programmatic API for bench/load-http.ts (the package ships no types).
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  interface Options {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    connections?: number;
    duration?: number;
    /** Stats tick, ms (default 1000); the run also ends on a tick, so it rounds `duration` up to it. */
    sampleInt?: number;
    timeout?: number;
    /** Returning a falsy value counts the response in `mismatches`. */
    verifyBody?: (body: string) => boolean;
    /** Each connection cycles through these; setupRequest may rewrite the request before it is sent. */
    requests?: Array<{ setupRequest?: (req: { body?: string | Buffer }) => { body?: string | Buffer } }>;
  }

  interface Result {
    /** Seconds, rounded to 10 ms. */
    duration: number;
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    resets: number;
    "2xx": number;
    statusCodeStats: Record<string, { count: number }>;
  }

  interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void;
  }

  function autocannon(opts: Options, cb?: (err: Error | null, result: Result) => void): Instance;
  export default autocannon;
}
