// What an operator reads when the gateway starts: the real log of a gateway
// process (src/main.ts through tsx) whose only configured provider is
// DashScope, line by line, and the README's excerpt of it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../support/fake-upstream.js";
import { startGatewayChild, type GatewayChild } from "../support/gateway-child.js";
import { readmeBlocks } from "../support/readme.js";

const UNCONFIGURED = "huggingface, featherless, vercel-ai-gateway, aihubmix, anannas, fireworks, together, google-vertex, openrouter";
const NO_ADMIN = "no admin key yet: create one with `npx gatewayz keys create --admin --user admin --name root`, or set GATEWAYZ_ADMIN_KEY";
const LISTENING = (port: number | string) => `Gatewayz listening on http://127.0.0.1:${port} (gRPC, gRPC-Web, Connect and OpenAI-compatible /v1)`;

/** The log's lines up to "listening", without their timestamps. */
async function startupLines(gw: GatewayChild): Promise<string[]> {
  await gw.waitForOutput(/Gatewayz listening on .*\n/);
  const lines = gw.output().split("\n");
  const end = lines.findIndex((l) => l.includes("Gatewayz listening on"));
  return lines.slice(0, end + 1).map((l) => {
    expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info |warn ) /);
    return l.slice(25);
  });
}

describe("the start-up log", { timeout: 60_000 }, () => {
  let fake: FakeUpstream;
  beforeAll(async () => {
    fake = await startFakeUpstream();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it("with only DashScope configured: the database, one line for it, one for the nine without a key", async () => {
    const gw = await startGatewayChild(fake);
    try {
      expect(await startupLines(gw)).toEqual([
        `info  Database: ${gw.dbPath}`,
        "info  ✓ Loaded alibaba-cloud provider client",
        `info  Not configured (no API key): ${UNCONFIGURED}`,
        `warn  ${NO_ADMIN}`,
        `info  ${LISTENING(gw.port)}`,
      ]);
    } finally {
      gw.dispose();
    }
  });

  it("with a region DashScope does not have: a warning that names the variable and the regions", async () => {
    const gw = await startGatewayChild(fake, { env: { ALIBABA_CLOUD_REGION: "mars", ALIBABA_CLOUD_BASE_URL: "" } });
    try {
      expect(await startupLines(gw)).toEqual([
        `info  Database: ${gw.dbPath}`,
        "warn  ⚠ Failed to load alibaba-cloud provider client: ALIBABA_CLOUD_REGION must be one of singapore, beijing, got mars; its models go to other providers or answer 503",
        `info  Not configured (no API key): ${UNCONFIGURED}`,
        "warn  ⚠ No provider is usable: chat requests answer 503 provider_not_configured until one has a key (DashScope: ALIBABA_CLOUD_API_KEY)",
        `warn  ${NO_ADMIN}`,
        `info  ${LISTENING(gw.port)}`,
      ]);
    } finally {
      gw.dispose();
    }
  });

  it("is what the README shows (timestamps, paths and the port aside)", async () => {
    const block = readmeBlocks().find((b) => b.code.includes("Gatewayz listening on"));
    expect(block?.marker).toMatch(/^not run: /);
    const gw = await startGatewayChild(fake);
    try {
      const shown = block!.code.trimEnd().split("\n").map((l) => l.slice(25));
      const normal = (l: string) => l.replace(/^(info  Database: ).*/, "$1PATH").replace(/127\.0\.0\.1:\d+/, "127.0.0.1:PORT");
      expect(shown.map(normal)).toEqual((await startupLines(gw)).map(normal));
    } finally {
      gw.dispose();
    }
  });
});
