// Raw Streamable HTTP against `portcullis --transport http` (PROXY_URL) for
// the in-band approval flow: what no well-behaved client sends, checked by
// tests/approval_elicit.rs. Uses Node's fetch, reading SSE streams as they come.
// Prints one JSON object with what it observed.

const url = process.env.PROXY_URL;
const base = {
  "Content-Type": "application/json",
  Accept: "application/json, text/event-stream",
};
let sessionId = null;
const headers = (extra = {}) => ({
  ...base,
  ...(sessionId ? { "Mcp-Session-Id": sessionId, "MCP-Protocol-Version": "2025-11-25" } : {}),
  ...extra,
});
const post = (msg, extra) =>
  fetch(url, { method: "POST", headers: headers(extra), body: JSON.stringify(msg) });

// Reads SSE events of a response body one by one.
function events(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  return {
    async next(timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const end = buf.indexOf("\n\n");
        if (end >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (data === "") continue; // a priming event
          return JSON.parse(data);
        }
        const left = deadline - Date.now();
        if (left <= 0) return { timeout: true };
        const chunk = await Promise.race([
          reader.read(),
          // unref: a pending timer must not keep the process alive.
          new Promise((r) => setTimeout(() => r({ timeout: true }), left).unref()),
        ]);
        if (chunk.timeout) return { timeout: true };
        if (chunk.done) return { done: true };
        buf += decoder.decode(chunk.value, { stream: true });
      }
    },
  };
}

const seen = {};
const init = await post({
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: { elicitation: {} },
    clientInfo: { name: "raw", version: "1" },
  },
});
sessionId = init.headers.get("mcp-session-id");
await init.text();
await (await post({ jsonrpc: "2.0", method: "notifications/initialized" })).text();

const call = (id, a) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name: "get-sum", arguments: { a, b: 1 } },
});

// 1. The held call's POST becomes an event stream carrying the question.
const held = await post(call(1, 500));
seen.heldContentType = held.headers.get("content-type");
const stream = events(held);
const question = await stream.next();
seen.question = question;
const eid = question.id;

// 2. A forged answer (an id never sent): 202, nothing forwarded, nothing on the stream.
const forged = await post({
  jsonrpc: "2.0",
  id: "portcullis-elicit-999",
  result: { action: "accept", content: { approve: true } },
});
seen.forgedStatus = forged.status;
await forged.text();

// 3. Cancelling the held call: the question is withdrawn on its stream, which ends.
const cancel = await post({
  jsonrpc: "2.0",
  method: "notifications/cancelled",
  params: { requestId: 1, reason: "changed my mind" },
});
seen.cancelStatus = cancel.status;
await cancel.text();
seen.withdrawn = await stream.next();
seen.afterWithdrawn = await stream.next();

// 4. The real answer after the withdrawal: dropped (202).
const late = await post({
  jsonrpc: "2.0",
  id: eid,
  result: { action: "accept", content: { approve: true } },
});
seen.lateStatus = late.status;
await late.text();

// 5. A wrong-shape answer: the held call gets a denial on its stream.
const second = await post(call(2, 600));
const stream2 = events(second);
const q2 = await stream2.next();
const bad = await post({ jsonrpc: "2.0", id: q2.id, result: { action: "maybe" } });
seen.badStatus = bad.status;
await bad.text();
seen.badAnswer = await stream2.next();
seen.afterBad = await stream2.next();

// 6. A client that takes JSON only cannot be asked: refused at once, as JSON.
const jsonOnly = await post(call(3, 700), { Accept: "application/json" });
seen.jsonOnlyContentType = jsonOnly.headers.get("content-type");
seen.jsonOnly = await jsonOnly.json();

// 7. The session keeps serving.
const ok = await post(call(4, 2), { Accept: "application/json" });
seen.ok = await ok.json();

process.stdout.write(JSON.stringify(seen) + "\n");
