// Gateway processes for a suite that starts several per test (replicas on one Redis): the
// gateway bundled once (a cold start of ~0.2 s each, not tsx's ~2 s), one fake upstream for the
// suite, reset after each test, and every process a test started killed after it.
import { afterAll, afterEach, beforeAll } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream.js";
import { bundleGateway, type GatewayBundle } from "./gateway-bundle.js";
import { startGatewayChild, type GatewayChild } from "./gateway-child.js";

export interface BundledReplicas {
  /** The suite's fake upstream (valid inside tests). */
  readonly fake: FakeUpstream;
  /** A gateway process on the bundle; `nodeOptions` go before it (a preload that skews the clock). */
  start(env: Record<string, string>, nodeOptions?: string[]): Promise<GatewayChild>;
}

export function useBundledReplicas(): BundledReplicas {
  let bundle: GatewayBundle;
  let fake: FakeUpstream;
  const children: GatewayChild[] = [];
  beforeAll(async () => {
    bundle = await bundleGateway();
    fake = await startFakeUpstream();
  });
  afterAll(async () => {
    await fake.close();
    bundle.remove();
  });
  afterEach(() => {
    for (const c of children.splice(0)) c.dispose();
    fake.reset();
  });
  return {
    get fake() {
      return fake;
    },
    async start(env, nodeOptions = []) {
      const c = await startGatewayChild(fake, { command: [process.execPath, ...nodeOptions, bundle.entry], env });
      children.push(c);
      return c;
    },
  };
}
