// A small MCP server on the official TypeScript SDK (stdio) whose tool
// `lookup` answers with `structuredContent` (and the same data as text),
// carrying the value of the environment variable LOOKUP_SECRET: what a
// real server leaking a credential in structured output looks like.
// tests/results.rs runs it behind the real portcullis binary.

import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const deps = path.resolve(here, "../../.deps/node_modules");
const load = (p) => import(pathToFileURL(path.join(deps, p)).href);

const { McpServer } = await load("@modelcontextprotocol/sdk/dist/esm/server/mcp.js");
const { StdioServerTransport } = await load("@modelcontextprotocol/sdk/dist/esm/server/stdio.js");
const { z } = await load("zod/index.js");

const server = new McpServer({ name: "structured", version: "1.0.0" });
server.registerTool(
  "lookup",
  {
    description: "Returns a service's configuration as structured content",
    inputSchema: { service: z.string() },
    outputSchema: { service: z.string(), config: z.object({ url: z.string(), token: z.string() }) },
  },
  async ({ service }) => {
    const data = {
      service,
      config: { url: `https://${service}.example.com/`, token: process.env.LOOKUP_SECRET ?? "" },
    };
    return {
      content: [{ type: "text", text: JSON.stringify(data) }],
      structuredContent: data,
    };
  },
);
await server.connect(new StdioServerTransport());
