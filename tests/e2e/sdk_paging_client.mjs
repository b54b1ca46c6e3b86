// Paging and list_changed through Portcullis with the official MCP
// TypeScript SDK client over Streamable HTTP. PROXY_URL is
// `portcullis --transport http -c POLICY -- node paged_server.mjs`.
// Prints one JSON object: every page as the client saw it (entries and
// nextCursor), the reads and prompt requests, the notifications, and the
// pages after the server announced a change.

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { ResourceListChangedNotificationSchema } = await sdk("types.js");

const client = new Client({ name: "portcullis-paging", version: "1" });
let changed = 0;
let onChange = () => {};
client.setNotificationHandler(ResourceListChangedNotificationSchema, async () => {
  changed++;
  onChange();
});
await client.connect(new StreamableHTTPClientTransport(new URL(env("PROXY_URL"))));

const attempt = async (f) => {
  try {
    return { result: await f() };
  } catch (e) {
    return { error: { code: e.code, message: e.message } };
  }
};

const pages = async (list, key, name) => {
  const out = [];
  let cursor;
  do {
    const page = await list(cursor ? { cursor } : {});
    out.push({ entries: page[key].map((e) => e[name]), nextCursor: page.nextCursor ?? null });
    cursor = page.nextCursor;
  } while (cursor);
  return out;
};

const out = {};
out.resources = await pages((p) => client.listResources(p), "resources", "uri");
out.templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
out.prompts = await pages((p) => client.listPrompts(p), "prompts", "name");
out.hiddenRead = await attempt(() => client.readResource({ uri: "paged://items/private/04" }));
out.respeltRead = await attempt(() => client.readResource({ uri: "PAGED://items/public/../private//04" }));
out.encodedRead = await attempt(() => client.readResource({ uri: "paged://items/public%2F..%2Fprivate/04" }));
out.publicRead = await attempt(() => client.readResource({ uri: "paged://items/public/01" }));
out.hiddenPrompt = await attempt(() => client.getPrompt({ name: "private_03" }));
out.prompt = await attempt(() => client.getPrompt({ name: "prompt_01", arguments: { topic: "paging" } }));

// Two additions, each announced with notifications/resources/list_changed.
for (const [kind, id] of [["private", "p1"], ["public", "n1"]]) {
  const seen = changed;
  const announced = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no list_changed within 10 s")), 10000);
    onChange = () => {
      if (changed > seen) {
        clearTimeout(t);
        resolve();
      }
    };
  });
  await client.callTool({ name: "add_resource", arguments: { kind, id } });
  await announced;
}
out.changed = changed;
out.resourcesAfter = await pages((p) => client.listResources(p), "resources", "uri");
out.addedHiddenRead = await attempt(() => client.readResource({ uri: "paged://items/private/p1" }));
out.addedRead = await attempt(() => client.readResource({ uri: "paged://items/public/n1" }));
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
