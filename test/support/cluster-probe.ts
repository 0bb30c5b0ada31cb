// Preloaded (`node --import tsx --import ./test/support/cluster-probe.ts src/main.ts --workers N`)
// into a gateway run by test/server/workers.test.ts. node:cluster re-runs the
// entry with the same execArgv, so it loads in the primary and in every worker.
// It only watches and reports, one `CLUSTER-PROBE {json}` line on stderr each:
//   primary: {ev:"primary", pid}; {ev:"listening", pid} when a worker listens;
//            {ev:"exit", pid, code, signal} when one exits (a worker's exit
//            code is otherwise invisible to the test, which is not its parent)
//   worker:  {ev:"conn", pid, port} for each connection it is handed (port: the client's)
// One short write per line: pipe writes under PIPE_BUF are not interleaved.

import cluster from "node:cluster";
import diagnostics from "node:diagnostics_channel";
import type { Socket } from "node:net";
import { writeSync } from "node:fs";

const report = (event: Record<string, unknown>) => {
  try {
    writeSync(2, `CLUSTER-PROBE ${JSON.stringify(event)}\n`);
  } catch {
    // stderr gone: nobody is listening any more
  }
};

if (cluster.isPrimary) {
  report({ ev: "primary", pid: process.pid });
  cluster.on("listening", (worker) => report({ ev: "listening", pid: worker.process.pid }));
  cluster.on("exit", (worker, code, signal) => report({ ev: "exit", pid: worker.process.pid, code, signal }));
} else {
  diagnostics.subscribe("net.server.socket", (message) => {
    const { socket } = message as { socket: Socket };
    report({ ev: "conn", pid: process.pid, port: socket.remotePort });
  });
}
