// Several callers through one `portcullis --transport http --jwks-file ...`
// endpoint, each with the official MCP TypeScript SDK client and its own
// bearer token (TOKENS: a JSON object name -> JWT the test signed). For each
// caller, in order: connect, tools/list, then ECHOES calls of echo with
// message "<name>-<n>", and one call of get-env. Prints one JSON object:
//   { name: { tools: [names], echoes: [{text, isError}], getEnv: {text, isError} | {error} } }

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const url = new URL(env("PROXY_URL"));
const tokens = JSON.parse(env("TOKENS"));
const echoes = Number(env("ECHOES"));

const outcome = async (call) => {
  try {
    const r = await call();
    return { text: r.content?.map((c) => c.text).join("\n"), isError: r.isError === true };
  } catch (e) {
    return { error: { code: e.code, message: e.message } };
  }
};

const seen = {};
for (const [name, token] of Object.entries(tokens)) {
  const client = new Client({ name: `portcullis-e2e-${name}`, version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const calls = [];
  for (let n = 1; n <= echoes; n++) {
    calls.push(
      await outcome(() => client.callTool({ name: "echo", arguments: { message: `${name}-${n}` } })),
    );
  }
  const getEnv = await outcome(() => client.callTool({ name: "get-env", arguments: {} }));
  await client.close();
  seen[name] = { tools, echoes: calls, getEnv };
}

process.stdout.write(JSON.stringify(seen) + "\n");
