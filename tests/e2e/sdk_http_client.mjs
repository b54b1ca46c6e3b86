// End-to-end check of Portcullis over HTTP with the official MCP TypeScript
// SDK client. Runs the scenario of scenario.mjs against
// @modelcontextprotocol/server-everything in its Streamable HTTP mode:
//   direct:   StreamableHTTPClientTransport -> DIRECT_URL (the server itself);
//   upstream: StdioClientTransport spawning
//             `PORTCULLIS_BIN --server everything --audit-log AUDIT_LOG --upstream TAP_URL`
//             (TAP_URL: http_tap.mjs in front of the server);
//   http:     StreamableHTTPClientTransport -> HTTP_PROXY_URL
//             (`portcullis --transport http --upstream <another tap>`, started by the test);
//   child:    StreamableHTTPClientTransport -> CHILD_PROXY_URL
//             (`portcullis --transport http -- tap.sh LOG node SERVER_JS`, started by the test).
// Prints one JSON object {direct, upstream, http, child}.

import { env, expectedArgsSha256, sdk, session } from "./scenario.mjs";

const { StdioClientTransport } = await sdk("client/stdio.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const httpTransport = (url) => new StreamableHTTPClientTransport(new URL(url));

const t0 = Date.now();
const direct = await session("direct", httpTransport(env("DIRECT_URL")));
const upstream = await session(
  "upstream",
  new StdioClientTransport({
    command: env("PORTCULLIS_BIN"),
    args: ["--server", "everything", "--audit-log", env("AUDIT_LOG"), "--upstream", env("TAP_URL")],
    env: { ...process.env },
    stderr: "pipe",
  }),
  { proxied: true },
);
const http = await session("http", httpTransport(env("HTTP_PROXY_URL")), { proxied: true });
const child = await session("child", httpTransport(env("CHILD_PROXY_URL")), { proxied: true });
process.stdout.write(
  JSON.stringify({ direct, upstream, http, child, expectedArgsSha256, totalMs: Date.now() - t0 }) + "\n",
);
