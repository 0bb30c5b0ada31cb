// HTTP load: autocannon for throughput and whole-request latency, and a small
// closed-loop probe (undici Pool, keep-alive) for time to first byte, which
// autocannon cannot report (it only times whole responses).
import autocannon from "autocannon";
import { Pool } from "undici";
import { Samples, result, type LoadResult } from "./stats.js";

export interface HttpTarget {
  origin: string;
  path: string;
  headers: Record<string, string>;
  body: string | Buffer;
  /** Called for every request instead of sending `body` each time: requests that differ (cache misses). */
  bodies?: () => string;
  /** A complete, successful body (SSE ends with [DONE]; Connect's end-stream has no error). */
  verify?: (body: string) => boolean;
}

/**
 * autocannon with `connections` keep-alive connections for `seconds`. Latency comes
 * from autocannon's per-response `response` event (fractional ms): its own histogram
 * records whole milliseconds, too coarse for sub-millisecond overhead.
 */
export async function autocannonRun(t: HttpTarget, connections: number, seconds: number): Promise<LoadResult> {
  const latency = new Samples();
  const startedAt = performance.now();
  const instance = autocannon({
    url: t.origin + t.path,
    method: "POST",
    headers: t.headers,
    body: t.body,
    connections,
    duration: seconds,
    // The run stops on a stats tick: at the default 1 s tick, 2.5 s would become 3 s.
    sampleInt: 100,
    timeout: 30,
    ...(t.verify ? { verifyBody: t.verify } : {}),
    ...(t.bodies ? { requests: [{ setupRequest: (req: { body?: string | Buffer }) => ({ ...req, body: t.bodies!() }) }] } : {}),
  });
  // The first argument is the connection's client object: it identifies the caller.
  const ids = new Map<object, number>();
  instance.on("response", (client: object, status: number, _bytes: number, ms: number) => {
    if (status < 200 || status >= 300) return;
    let id = ids.get(client);
    if (id === undefined) ids.set(client, (id = ids.size));
    latency.add(ms, id);
  });
  const r = await instance;
  // A mismatch (2xx, but a broken or error-carrying body) was also timed: it is an error.
  const timing = { concurrency: connections, startedAt, steadyUntil: startedAt + seconds * 1000, seconds: r.duration };
  return result("autocannon", latency, r.errors + r.timeouts + r.non2xx + r.mismatches, timing, undefined, r.mismatches);
}

/** An SSE event carrying answer text (OpenAI's first chunk carries only the role). */
const CONTENT = /"content":"[^"]/;

/**
 * Closed loop: `concurrency` callers, each sending the next request as soon as the
 * previous one has ended, for `seconds`; then the calls in flight finish. Times the
 * last body byte, and the first one (`first: "content"`: the first SSE event with text).
 */
export async function ttfbProbe(t: HttpTarget, concurrency: number, seconds: number, first: "byte" | "content" = "byte"): Promise<LoadResult> {
  const pool = new Pool(t.origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const latency = new Samples();
  const ttfb = new Samples();
  let errors = 0;
  const startedAt = performance.now();
  const deadline = startedAt + seconds * 1000;
  const caller = async (_: unknown, id: number) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await pool.request({ path: t.path, method: "POST", headers: t.headers, body: t.body, headersTimeout: 30_000, bodyTimeout: 30_000 });
        let firstAt = 0;
        let last = "";
        for await (const chunk of res.body) {
          const text = (chunk as Buffer).toString("latin1");
          if (firstAt === 0 && (first === "byte" || CONTENT.test(last + text))) firstAt = performance.now() - t0;
          last = (last + text).slice(-64);
        }
        const total = performance.now() - t0;
        if (res.statusCode === 200 && firstAt > 0 && (!t.verify || t.verify(last))) {
          ttfb.add(firstAt, id);
          latency.add(total, id);
        } else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const timing = { concurrency, startedAt, steadyUntil: deadline, seconds: (performance.now() - startedAt) / 1000 };
  await pool.close();
  return result("undici-probe", latency, errors, timing, ttfb);
}
