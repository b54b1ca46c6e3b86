// Resources and prompts through Portcullis with the official MCP TypeScript
// SDK client over Streamable HTTP (docs/surfaces.md). PROXY_URL is
// `portcullis --transport http -c POLICY -- node server-everything`, the
// policy hiding and denying some of its resources and prompts.
// Prints one JSON object with what the client saw.

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const client = new Client({ name: "portcullis-surfaces", version: "1" });
await client.connect(new StreamableHTTPClientTransport(new URL(env("PROXY_URL"))));

const attempt = async (f) => {
  try {
    return { result: await f() };
  } catch (e) {
    return { error: { code: e.code, message: e.message, data: e.data } };
  }
};

const out = {};
out.resources = [];
let cursor;
do {
  const page = await client.listResources(cursor ? { cursor } : {});
  out.resources.push(...page.resources.map((r) => r.uri));
  cursor = page.nextCursor;
} while (cursor);
out.templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
out.prompts = (await client.listPrompts()).prompts.map((p) => p.name);
out.hiddenRead = await attempt(() =>
  client.readResource({ uri: "demo://resource/static/document/architecture.md" }),
);
out.deniedRead = await attempt(() => client.readResource({ uri: "demo://resource/dynamic/text/1" }));
out.encodedRead = await attempt(() =>
  client.readResource({ uri: "DEMO://resource/dynamic/./x/../text//%31" }),
);
out.allowedRead = await attempt(() => client.readResource({ uri: out.resources[0] }));
out.deniedPrompt = await attempt(() =>
  client.getPrompt({ name: "args-prompt", arguments: { city: "Paris" } }),
);
out.allowedPrompt = await attempt(() =>
  client.getPrompt({ name: "args-prompt", arguments: { city: "Berlin" } }),
);
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
