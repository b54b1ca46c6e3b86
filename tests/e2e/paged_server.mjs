// A small real MCP server on the official TypeScript SDK (stdio) that pages
// its lists and announces changes: 25 resources, 10 per page (every 4th is
// under paged://items/private/, the others under paged://items/public/),
// two resource templates, 12 prompts, 5 per page (every 3rd named
// private_*), and a tool `add_resource` that adds a resource and sends
// `notifications/resources/list_changed`. tests/paging.rs runs it behind
// the real portcullis binary (stdio and Streamable HTTP).
//
// Cursors are opaque to clients ("c:<offset>:<generation>"); a cursor from
// another generation of the list is still served from its offset.
//
// `resources/read` resolves a URI as a lenient server would: scheme and host
// case folded, percent-escapes decoded (an encoded `/` becomes a separator),
// `.`/`..` and empty segments resolved. Private resources hold a (fake)
// GitHub token, public ones plain text.

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = path.resolve(here, "../../.deps/node_modules");
const load = (p) => import(pathToFileURL(path.join(deps, p)).href);

const { Server } = await load("@modelcontextprotocol/sdk/dist/esm/server/index.js");
const { StdioServerTransport } = await load("@modelcontextprotocol/sdk/dist/esm/server/stdio.js");
const types = await load("@modelcontextprotocol/sdk/dist/esm/types.js");

const RESOURCE_PAGE = 10;
const PROMPT_PAGE = 5;
const TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

const pad = (n) => String(n).padStart(2, "0");
const resources = [];
for (let i = 1; i <= 25; i++) {
  const kind = i % 4 === 0 ? "private" : "public";
  resources.push({ uri: `paged://items/${kind}/${pad(i)}`, name: `item ${pad(i)}`, mimeType: "text/plain" });
}
const prompts = [];
for (let i = 1; i <= 12; i++) {
  const name = i % 3 === 0 ? `private_${pad(i)}` : `prompt_${pad(i)}`;
  prompts.push({ name, description: `prompt ${pad(i)}`, arguments: [{ name: "topic", required: false }] });
}
let generation = 1;

const page = (items, size, cursor) => {
  let offset = 0;
  if (cursor !== undefined) {
    const m = /^c:(\d+):\d+$/.exec(cursor);
    if (!m) throw new types.McpError(types.ErrorCode.InvalidParams, `bad cursor ${cursor}`);
    offset = Number(m[1]);
  }
  const slice = items.slice(offset, offset + size);
  const next = offset + size < items.length ? `c:${offset + size}:${generation}` : undefined;
  return { slice, next };
};

// What a lenient server reads a URI as.
const resolve = (uri) => {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(uri);
  if (!m) return undefined;
  const out = [];
  for (const seg of decodeURIComponent(m[3]).split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return `${m[1].toLowerCase()}://${m[2].toLowerCase()}/${out.join("/")}`;
};

const server = new Server(
  { name: "paged", version: "1.0.0" },
  { capabilities: { resources: { listChanged: true }, prompts: { listChanged: true }, tools: {} } },
);

server.setRequestHandler(types.ListResourcesRequestSchema, async (req) => {
  const { slice, next } = page(resources, RESOURCE_PAGE, req.params?.cursor);
  return next ? { resources: slice, nextCursor: next } : { resources: slice };
});

server.setRequestHandler(types.ListResourceTemplatesRequestSchema, async () => ({
  resourceTemplates: [
    { uriTemplate: "paged://items/public/{id}", name: "public item" },
    { uriTemplate: "paged://items/private/{id}", name: "private item" },
  ],
}));

server.setRequestHandler(types.ReadResourceRequestSchema, async (req) => {
  const uri = resolve(req.params.uri);
  const r = resources.find((x) => x.uri === uri);
  if (!r) throw new types.McpError(-32002, `Resource not found: ${req.params.uri}`);
  const text = uri.includes("/private/") ? `private ${uri}: token=${TOKEN}` : `public ${uri}`;
  return { contents: [{ uri: req.params.uri, mimeType: "text/plain", text }] };
});

server.setRequestHandler(types.ListPromptsRequestSchema, async (req) => {
  const { slice, next } = page(prompts, PROMPT_PAGE, req.params?.cursor);
  return next ? { prompts: slice, nextCursor: next } : { prompts: slice };
});

server.setRequestHandler(types.GetPromptRequestSchema, async (req) => {
  const p = prompts.find((x) => x.name === req.params.name);
  if (!p) throw new types.McpError(types.ErrorCode.InvalidParams, `no prompt ${req.params.name}`);
  const topic = req.params.arguments?.topic ?? "anything";
  return { messages: [{ role: "user", content: { type: "text", text: `${p.name} about ${topic}` } }] };
});

server.setRequestHandler(types.ListToolsRequestSchema, async () => ({
  tools: [
    {
      name: "add_resource",
      description: "Adds a resource (public or private) and announces the change",
      inputSchema: {
        type: "object",
        properties: { kind: { type: "string", enum: ["public", "private"] }, id: { type: "string" } },
        required: ["kind", "id"],
      },
    },
  ],
}));

server.setRequestHandler(types.CallToolRequestSchema, async (req) => {
  if (req.params.name !== "add_resource") {
    throw new types.McpError(types.ErrorCode.InvalidParams, `no tool ${req.params.name}`);
  }
  const { kind, id } = req.params.arguments ?? {};
  const uri = `paged://items/${kind}/${id}`;
  // At the front: every page after the change differs from before.
  resources.unshift({ uri, name: `added ${id}`, mimeType: "text/plain" });
  generation++;
  await server.sendResourceListChanged();
  return { content: [{ type: "text", text: `added ${uri}` }] };
});

await server.connect(new StdioServerTransport());
