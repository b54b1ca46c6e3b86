// A small real MCP server on the official TypeScript SDK (stdio) that
// serves the files under a directory as `file://` resources, the way a
// filesystem server does: `resources/list` lists every entry under the
// root (symlinks included, by their own path), `resources/read` reads the
// file a URI names, following symlinks. tests/symlinks.rs runs it behind
// the real portcullis binary to show result rules and list filtering by
// symlink target.
//
// Usage: node file_resources_server.mjs ROOT

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = path.resolve(here, "../../.deps/node_modules");
const load = (p) => import(pathToFileURL(path.join(deps, p)).href);

const { Server } = await load("@modelcontextprotocol/sdk/dist/esm/server/index.js");
const { StdioServerTransport } = await load("@modelcontextprotocol/sdk/dist/esm/server/stdio.js");
const types = await load("@modelcontextprotocol/sdk/dist/esm/types.js");

const root = process.argv[2];
if (!root) {
  console.error("usage: file_resources_server.mjs ROOT");
  process.exit(2);
}

// Every entry under `dir`, depth first, without following links.
function walk(dir, out) {
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) {
      walk(p, out);
    } else {
      out.push(p);
    }
  }
  return out;
}

const server = new Server(
  { name: "file-resources", version: "1.0.0" },
  { capabilities: { resources: {} } },
);

server.setRequestHandler(types.ListResourcesRequestSchema, async () => ({
  resources: walk(root, []).map((p) => ({ uri: `file://${p}`, name: path.basename(p), mimeType: "text/plain" })),
}));

server.setRequestHandler(types.ReadResourceRequestSchema, async (req) => {
  const uri = req.params.uri;
  const p = decodeURIComponent(new URL(uri).pathname);
  return { contents: [{ uri, mimeType: "text/plain", text: fs.readFileSync(p, "utf8") }] };
});

await server.connect(new StdioServerTransport());
