// Human approval in band (issue 13) with the official MCP TypeScript SDK
// client and an elicitation handler, through the real `portcullis` binary
// in front of server-everything (tests/approval_elicit.rs checks what the
// server received through its tap).
//
// TRANSPORT=stdio: the client spawns
//   PORTCULLIS_BIN -c POLICY --audit-log AUDIT_LOG -- TAP_SH TAP_LOG node SERVER_JS
// (or, with UPSTREAM set, `... --upstream UPSTREAM`: an HTTP MCP server).
// TRANSPORT=http: the client connects to PROXY_URL.
//
// One session with elicitation declared (CAPABILITY: the JSON of its
// `elicitation` capability) calls get-sum in turn, its handler answering as
// each step says; then a session without elicitation makes one held call.
// Prints one JSON object: { steps: [{name, prompts, text, isError} | {name, error}],
// asked: [elicitation params], withoutElicitation: {text, isError, meta} }.

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { ElicitRequestSchema } = await sdk("types.js");

const transport = async () => {
  if (env("TRANSPORT") === "http") {
    const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
    return new StreamableHTTPClientTransport(new URL(env("PROXY_URL")));
  }
  const { StdioClientTransport } = await sdk("client/stdio.js");
  // UPSTREAM: an HTTP MCP server instead of a child process.
  const upstream = process.env.UPSTREAM
    ? ["--upstream", process.env.UPSTREAM]
    : ["--", env("TAP_SH"), env("TAP_LOG"), "node", env("SERVER_JS")];
  return new StdioClientTransport({
    command: env("PORTCULLIS_BIN"),
    args: ["-c", env("POLICY"), "--audit-log", env("AUDIT_LOG"), "--log-level", "error", ...upstream],
    env: { ...process.env },
    stderr: "inherit",
  });
};

// What the handler does with the next question.
let answer = "accept";
let prompts = 0;
const asked = [];

const client = new Client(
  { name: "portcullis-e2e-elicit", version: "1.0.0" },
  { capabilities: { elicitation: JSON.parse(env("CAPABILITY")) } },
);
client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
  prompts += 1;
  asked.push(request.params);
  switch (answer) {
    case "accept":
      return { action: "accept", content: { approve: true } };
    case "refuse":
      return { action: "accept", content: { approve: false } };
    case "decline":
      return { action: "decline" };
    case "cancel":
      return { action: "cancel" };
    case "never":
      // Never answers; the proxy's cancellation aborts the request.
      return await new Promise((_, reject) => {
        extra.signal.addEventListener("abort", () => reject(new Error("withdrawn")));
      });
    default:
      throw new Error(`unknown answer ${answer}`);
  }
});
await client.connect(await transport());

const text = (r) => r.content?.map((c) => c.text).join("\n");
const steps = [];
const step = async (name, how, args) => {
  answer = how;
  const before = prompts;
  const t0 = Date.now();
  try {
    const r = await client.callTool({ name: "get-sum", arguments: args });
    steps.push({
      name,
      prompts: prompts - before,
      text: text(r),
      isError: r.isError === true,
      meta: r._meta ?? null,
      ms: Date.now() - t0,
    });
  } catch (e) {
    steps.push({ name, prompts: prompts - before, error: { code: e.code, message: e.message } });
  }
};

await step("unmatched", "accept", { a: 1, b: 2 });
await step("accept", "accept", { a: 500, b: 1 });
await step("refuse", "refuse", { a: 501, b: 1 });
await step("decline", "decline", { a: 502, b: 1 });
await step("cancel", "cancel", { a: 503, b: 1 });
await step("timeout", "never", { a: 504, b: 1 });
// The session keeps serving after a timeout.
await step("after", "accept", { a: 2, b: 2 });
await client.close();

// A client without elicitation: the operator flow's refusal with an id.
const plain = new Client({ name: "portcullis-e2e-plain", version: "1.0.0" });
await plain.connect(await transport());
const r = await plain.callTool({ name: "get-sum", arguments: { a: 600, b: 1 } });
const withoutElicitation = { text: text(r), isError: r.isError === true, meta: r._meta ?? null };
await plain.close();

process.stdout.write(JSON.stringify({ steps, asked, withoutElicitation }) + "\n");
