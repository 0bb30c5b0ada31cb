// The floor: the least a Node.js proxy can do per request on this machine. A bare
// node:http server that forwards each POST body to the upstream over an undici Pool
// and relays the answer: no auth, no limits, no usage, no SDK. bench/floor.ts runs
// the same load through it as through the gateway, so the gateway's CPU per request
// can be read against what Node itself costs.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";

const upstream = process.env.UPSTREAM!;
const pool = new Pool(upstream, { connections: 512, keepAliveTimeout: 30_000 });
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    pool.request({ path: req.url!, method: "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) })
      .then(async (up) => {
        res.writeHead(up.statusCode, { "content-type": String(up.headers["content-type"] ?? "application/json") });
        for await (const c of up.body) res.write(c);
        res.end();
      }, () => {
        res.writeHead(502);
        res.end();
      });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }));
