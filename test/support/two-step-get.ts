import net from "node:net";

/**
 * A raw HTTP/1 `GET path` sent up to its last header line, so a test can
 * start a request before an event (a drain) and finish it after; `finish()`
 * ends the headers and reads the answer, whose end is the connection's close
 * (during a drain every answer closes its connection), or 3 s.
 */
export async function getInTwoSteps(port: number, path: string) {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (text += chunk));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: gatewayz\r\n`);
  return {
    async finish(): Promise<{ statusLine: string | undefined; headers: string; body: any }> {
      socket.write("\r\n");
      await Promise.race([closed, new Promise((r) => setTimeout(r, 3_000))]);
      socket.destroy();
      const [head = "", body = ""] = text.split("\r\n\r\n");
      return { statusLine: head.split("\r\n")[0], headers: head.toLowerCase(), body: body ? JSON.parse(body) : undefined };
    },
  };
}
