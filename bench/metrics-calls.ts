// `npx tsx bench/metrics-calls.ts`: what the metrics cost a request on its path, measured without
// the noise of a loaded machine: the observer calls one chat makes (its request, latency, TTFT,
// tokens and cost, and one upstream attempt), timed over many calls in this process. The
// on/off comparison in `npm run bench` measures the same through real gateways, where run-to-run
// noise on a shared machine can be larger than this.
import { createMetrics } from "../src/observe/metrics.js";
import type { FinishedChat } from "../src/observe/observer.js";

const metrics = createMetrics({
  inFlight: () => 0, providers: ["alibaba-cloud"], circuit: () => "closed", authRefusals: () => ({}),
  usageRows: () => ({ pending: 0, written: 0, lost: 0 }),
});
const chat: FinishedChat = {
  protocol: "openai", operation: "chat", model: "qwen-plus", provider: "alibaba-cloud", outcome: "ok", latencyMs: 12, ttftMs: 5, streamed: false,
  usage: { promptTokens: 10, completionTokens: 20, totalTokens: 30, cachedTokens: 2, reasoningTokens: 0 }, costPico: 12_345n,
};
const CALLS = 200_000;
const rounds: number[] = [];
for (let round = 0; round < 5; round++) {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) {
    metrics.observer.chatFinished(chat);
    metrics.observer.attemptFinished("alibaba-cloud", 0.01, "ok");
  }
  rounds.push(((performance.now() - started) * 1000) / CALLS);
}
rounds.sort((a, b) => a - b);
console.log(`metrics on the request path: ${rounds[2]!.toFixed(2)} µs per chat (median of 5 rounds of ${CALLS.toLocaleString("en")}; range ${rounds[0]!.toFixed(2)}–${rounds[4]!.toFixed(2)})`);
