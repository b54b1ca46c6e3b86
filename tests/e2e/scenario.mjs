// The end-to-end scenario run by the official MCP TypeScript SDK client
// against @modelcontextprotocol/server-everything, directly or through
// Portcullis, over any client transport (stdio or Streamable HTTP). Each
// runner (sdk_client.mjs: stdio; sdk_http_client.mjs: HTTP) compares what
// the client observed.

import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir = path.resolve(here, "../../.deps/node_modules/@modelcontextprotocol/sdk/dist/esm");
export const sdk = (p) => import(pathToFileURL(path.join(sdkDir, p)).href);

const { Client } = await sdk("client/index.js");
const types = await sdk("types.js");

export function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`environment variable ${name} is not set`);
  }
  return v;
}

const ROOT = { uri: "file:///tmp/portcullis-e2e-root", name: "e2e-root" };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// An error as plain data.
function errorData(e) {
  if (e === null || typeof e !== "object") {
    return { name: "non-error", message: String(e) };
  }
  const out = { name: e.name, message: e.message };
  if (e.code !== undefined) out.code = e.code;
  if (e.data !== undefined) out.data = e.data;
  return out;
}

/// {result} or {error}: a step's failure is recorded, never thrown.
export async function attempt(fn) {
  try {
    return { result: await fn() };
  } catch (e) {
    return { error: errorData(e) };
  }
}

export async function session(label, transport, { proxied = false } = {}) {
  const obs = { label };
  // Messages as the client's transport saw them (both directions).
  const received = [];
  const sent = [];
  let stderr = "";

  transport.stderr?.on("data", (d) => {
    stderr += d.toString();
  });
  // Record every message in both directions (the SDK sets onmessage before start()).
  const start = transport.start.bind(transport);
  transport.start = async () => {
    const handler = transport.onmessage;
    transport.onmessage = (msg, extra) => {
      received.push(msg);
      handler?.(msg, extra);
    };
    return start();
  };
  const send = transport.send.bind(transport);
  transport.send = (msg, opts) => {
    sent.push(msg);
    return send(msg, opts);
  };

  const client = new Client(
    { name: "portcullis-e2e-sdk", version: "1.0.0" },
    { capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} } },
  );
  let rootsRequests = 0;
  client.setRequestHandler(types.ListRootsRequestSchema, async () => {
    rootsRequests += 1;
    return { roots: [ROOT] };
  });
  client.setRequestHandler(types.CreateMessageRequestSchema, async () => ({
    role: "assistant",
    content: { type: "text", text: "sampled by the e2e client" },
    model: "e2e-model",
  }));
  client.setRequestHandler(types.ElicitRequestSchema, async () => ({ action: "decline" }));
  const clientErrors = [];
  client.onerror = (e) => clientErrors.push(String(e?.message ?? e));
  const logMessages = [];
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (n) => {
    logMessages.push(n.params);
  });

  const connect = await attempt(() => client.connect(transport));
  if (connect.error) {
    obs.connectError = connect.error;
    obs.stderr = stderr;
    await attempt(() => client.close());
    return obs;
  }

  const init = received.find((m) => m.id !== undefined && m.result && m.result.protocolVersion !== undefined);
  obs.protocolVersion = init?.result?.protocolVersion ?? null;
  obs.initializeResult = init?.result ?? null;
  obs.serverInfo = client.getServerVersion() ?? null;
  obs.serverCapabilities = client.getServerCapabilities() ?? null;
  obs.instructions = client.getInstructions() ?? null;

  // server-everything asks for the roots 350 ms after notifications/initialized.
  const rootsDeadline = Date.now() + 3000;
  while (rootsRequests === 0 && Date.now() < rootsDeadline) {
    await sleep(25);
  }

  // tools/list, every page.
  obs.tools = await attempt(async () => {
    const tools = [];
    let cursor;
    let pages = 0;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor });
      pages += 1;
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined && pages < 50);
    return { tools, pages };
  });

  const call = (name, args, options) => attempt(() => client.callTool({ name, arguments: args }, undefined, options));
  const calls = [];
  const tracked = async (name, args, options) => {
    calls.push({ name, arguments: args });
    return call(name, args, options);
  };

  obs.echo = await tracked("echo", { message: "hello e2e" });
  obs.getSum = await tracked("get-sum", { a: 2, b: 3 });
  obs.unknownTool = await tracked("no-such-tool", {});

  if (proxied) {
    obs.denied = {
      getSumLarge: await tracked("get-sum", { a: 5000, b: 1 }),
      gzip: await tracked("gzip-file-as-resource", { name: "x.gz", data: "https://example.com/" }),
      getEnv: await tracked("get-env", {}),
    };
  }

  // Progress notifications.
  {
    const progress = [];
    const t0 = Date.now();
    const r = await tracked("trigger-long-running-operation", { duration: 2, steps: 4 }, {
      onprogress: (p) => progress.push(p),
    });
    obs.progress = { call: r, count: progress.length, values: progress, elapsedMs: Date.now() - t0 };
  }

  // A fast call overtakes a slow one.
  {
    const order = [];
    const t0 = Date.now();
    const slow = tracked("trigger-long-running-operation", { duration: 2, steps: 2 }).then((r) => {
      order.push("slow");
      return { r, ms: Date.now() - t0 };
    });
    const fast = tracked("echo", { message: "overtake" }).then((r) => {
      order.push("fast");
      return { r, ms: Date.now() - t0 };
    });
    const [s, f] = await Promise.all([slow, fast]);
    obs.overlap = {
      order,
      firstFinished: order[0],
      slowMs: s.ms,
      fastMs: f.ms,
      slow: s.r,
      fast: f.r,
    };
  }

  // Cancellation: the SDK sends notifications/cancelled and rejects at once.
  {
    const ac = new AbortController();
    const t0 = Date.now();
    const timer = setTimeout(() => ac.abort("e2e abort"), 500);
    const r = await tracked("trigger-long-running-operation", { duration: 5, steps: 5 }, { signal: ac.signal });
    clearTimeout(timer);
    obs.cancel = {
      aborted: ac.signal.aborted,
      elapsedMs: Date.now() - t0,
      ...(r.error ? { error: r.error } : { unexpectedResult: r.result }),
    };
    // The session still works after a cancellation.
    await sleep(200);
    obs.afterCancel = await tracked("echo", { message: "after cancel" });
  }

  // A server request (sampling) on the stream of a call that is still
  // pending: the client's answer must get through while the call waits.
  obs.sampling = await tracked("trigger-sampling-request", { prompt: "e2e", maxTokens: 16 });

  obs.calls = calls;
  obs.rootsRequests = rootsRequests;
  obs.logMessages = logMessages;
  obs.clientErrors = clientErrors;
  obs.cancelledSent = sent.filter((m) => m.method === "notifications/cancelled");
  obs.serverRequests = received.filter((m) => m.method !== undefined && m.id !== undefined).map((m) => m.method);
  obs.notificationMethods = received.filter((m) => m.method !== undefined && m.id === undefined).map((m) => m.method);

  // Late messages (e.g. an answer to the cancelled request) have a moment to arrive.
  await sleep(200);
  const child = transport._process;
  if (typeof transport.terminateSession === "function") {
    // Streamable HTTP: end the session (DELETE), as a well-behaved client does.
    const t = await attempt(() => transport.terminateSession());
    obs.terminated = t.error ? { error: t.error } : { ok: true };
  }
  const closed = await attempt(() => client.close());
  if (closed.error) obs.closeError = closed.error;
  if (child) {
    // StdioClientTransport.close() waits for 'close' (or 2 s, then SIGTERM).
    const t0 = Date.now();
    while (child.exitCode === null && child.signalCode === null && Date.now() - t0 < 5000) {
      await sleep(20);
    }
    obs.exit = { code: child.exitCode, signal: child.signalCode };
  }
  // Responses that arrived for requests the client had given up on.
  obs.receivedAfterCancel = received.filter(
    (m) => m.id !== undefined && m.method === undefined && obs.cancelledSent.some((c) => c.params?.requestId === m.id),
  );
  obs.stderr = stderr;
  return obs;
}

// sha256 of the canonical form of two argument objects (string values only,
// so their canonical form is plain JSON), to check the audit log's args_sha256.
const sha256 = (s) => createHash("sha256").update(s).digest("hex");
export const expectedArgsSha256 = {
  echoHelloE2e: sha256(JSON.stringify({ message: "hello e2e" })),
  empty: sha256("{}"),
};
