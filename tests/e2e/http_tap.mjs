// A recording reverse proxy for the HTTP end-to-end tests: what Portcullis
// sends to an HTTP MCP server, seen from the server's side.
//
//   node http_tap.mjs   (env TARGET=http://127.0.0.1:PORT, TAP_LOG=FILE)
//
// Listens on a free loopback port and prints `listening on PORT` on stdout.
// Every request is appended to TAP_LOG as one JSON line
// {method, path, session, body} (body parsed when it is JSON) before it is
// forwarded; answers (JSON or SSE) are streamed back as they arrive.

import fs from "node:fs";
import http from "node:http";

const target = new URL(process.env.TARGET);
const log = process.env.TAP_LOG;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks);
    let body = null;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        body = raw.toString("utf8");
      }
    }
    fs.appendFileSync(
      log,
      JSON.stringify({ method: req.method, path: req.url, session: req.headers["mcp-session-id"] ?? null, body }) + "\n",
    );
    const headers = { ...req.headers, host: target.host };
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.on("data", (c) => res.write(c));
        upRes.on("end", () => res.end());
      },
    );
    up.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(String(e));
    });
    res.on("close", () => up.destroy());
    up.end(raw);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening on ${server.address().port}\n`);
});
