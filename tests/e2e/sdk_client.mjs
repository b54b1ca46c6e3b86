// End-to-end check of Portcullis with the official MCP TypeScript SDK client
// over stdio.
//
// Runs the scenario of scenario.mjs twice against @modelcontextprotocol/server-everything:
//   direct:  the SDK client spawns `node SERVER_JS`;
//   proxied: the SDK client spawns
//            `PORTCULLIS_BIN --server everything --audit-log AUDIT_LOG -- TAP_SH TAP_LOG node SERVER_JS`.
// Prints one JSON object {direct, proxied} with what the client observed;
// tests/e2e_sdk.rs compares the two and inspects TAP_LOG and AUDIT_LOG.
//
// Env: PORTCULLIS_BIN, SERVER_JS, TAP_SH, TAP_LOG, AUDIT_LOG.
// Errors of single steps are recorded (as {error: ...}); an unexpected
// exception exits non-zero.

import { env, expectedArgsSha256, sdk, session } from "./scenario.mjs";

const { StdioClientTransport } = await sdk("client/stdio.js");

const stdio = (command, args) =>
  new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "pipe" });

const SERVER_JS = env("SERVER_JS");
const t0 = Date.now();
const direct = await session("direct", stdio("node", [SERVER_JS]));
const proxied = await session(
  "proxied",
  stdio(env("PORTCULLIS_BIN"), [
    "--server",
    "everything",
    "--audit-log",
    env("AUDIT_LOG"),
    "--",
    env("TAP_SH"),
    env("TAP_LOG"),
    "node",
    SERVER_JS,
  ]),
  { proxied: true },
);
process.stdout.write(JSON.stringify({ direct, proxied, expectedArgsSha256, totalMs: Date.now() - t0 }) + "\n");
