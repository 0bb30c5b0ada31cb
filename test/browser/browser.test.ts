import { build } from "esbuild";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// Debian's chromium; CI installs it with apt. The flags keep it off the
// network (this machine has none) and quiet.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let pageServer: Server;
let pageOrigin: string;
let allowed: TestGateway;
let refused: TestGateway;
let browser: Browser;
let page: Page;

/** Serves the test page from its own origin: another port is another origin. */
async function servePage(script: string): Promise<Server> {
  const html = `<!doctype html><meta charset="utf-8"><title>Gatewayz browser clients</title><script type="module" src="/client.js"></script>`;
  const server = createServer((req, res) => {
    if (req.url === "/client.js") res.writeHead(200, { "content-type": "text/javascript" }).end(script);
    else res.writeHead(200, { "content-type": "text/html" }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

beforeAll(async () => {
  const bundle = await build({
    entryPoints: ["test/browser/page-client.ts"], bundle: true, format: "esm", platform: "browser", write: false, logLevel: "silent",
  });
  pageServer = await servePage(bundle.outputFiles[0]!.text);
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  allowed = await startTestGateway({ CORS_ORIGINS: `https://elsewhere.example, ${pageOrigin}` });
  refused = await startTestGateway({ CORS_ORIGINS: "https://elsewhere.example" });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  page = await browser.newPage();
  await page.goto(pageOrigin);
  await page.waitForFunction(() => "gatewayz" in window);
}, 60_000);

afterAll(async () => {
  if (process.env.SCREENSHOT) await page?.screenshot({ path: process.env.SCREENSHOT });
  await browser?.close();
  await allowed?.close();
  await refused?.close();
  await new Promise((resolve) => pageServer?.close(resolve));
});

describe("from a browser page on an allowed origin", () => {
  it("streams Chat over gRPC-Web", async () => {
    const r = await page.evaluate(([url, key]) => window.gatewayz.grpcWeb(url, key), [allowed.url, allowed.key] as const);
    expect(r).toEqual({ text: "Hello from qwen-plus", provider: "alibaba-cloud", totalUsd: "0.000000125" });
  });

  it("streams Chat over gRPC-Web's text mode with Google's grpc-web client (its default)", async () => {
    const r = await page.evaluate(([url, key]) => window.gatewayz.googleGrpcWeb(url, key), [allowed.url, allowed.key] as const);
    expect(r).toEqual({ text: "Hello from qwen-plus", provider: "alibaba-cloud", totalUsd: "0.000000125" });
  });

  it("streams Chat over Connect", async () => {
    const r = await page.evaluate(([url, key]) => window.gatewayz.connect(url, key), [allowed.url, allowed.key] as const);
    expect(r).toEqual({ text: "Hello from qwen-plus", provider: "alibaba-cloud", totalUsd: "0.000000125" });
  });

  it("streams through the OpenAI SDK, with the gateway's headers readable", async () => {
    const r = await page.evaluate(([url, key]) => window.gatewayz.openai(url, key), [allowed.url, allowed.key] as const);
    expect(r.text).toBe("Hello from qwen-plus");
    expect(r.headerProvider).toBe("alibaba-cloud");
    // The SDK's Authorization header forced a real preflight, and it passed.
    expect(allowed.fake.requests.at(-1)!.body.stream).toBe(true);
  });
});

describe("from a browser page on an origin not in CORS_ORIGINS", () => {
  it("is refused by the browser on every protocol, before any upstream call", async () => {
    const before = refused.fake.requests.length;
    for (const door of ["grpcWeb", "connect", "openai"] as const) {
      // A valid key: the refusal is CORS's, not the gateway's authentication.
      const outcome = await page.evaluate(
        ([d, url, key]) => window.gatewayz[d](url, key).then(() => "succeeded", (e: Error) => String(e)),
        [door, refused.url, refused.key] as const,
      );
      expect(outcome, door).not.toBe("succeeded");
    }
    expect(refused.fake.requests.length).toBe(before);
  });
});
