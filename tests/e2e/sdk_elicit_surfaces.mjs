// Human approval of resources and prompts in band, with the official MCP
// TypeScript SDK client over Streamable HTTP (PROXY_URL) and an
// elicitation handler (tests/approval_elicit.rs checks what the server
// received through its tap).
//
// One session with elicitation reads RESOURCE (the handler accepts) and
// gets the prompt args-prompt for Paris (the handler declines); then a
// session without elicitation reads RESOURCE (the operator flow's refusal).
// Prints one JSON object: { read, prompt, asked, plain }, each a result or
// { error: {code, message, data} }.

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { ElicitRequestSchema } = await sdk("types.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const transport = () => new StreamableHTTPClientTransport(new URL(env("PROXY_URL")));

let answer = "accept";
const asked = [];
const client = new Client(
  { name: "portcullis-e2e-elicit-surfaces", version: "1.0.0" },
  { capabilities: { elicitation: { form: {} } } },
);
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  asked.push(request.params);
  return answer === "accept"
    ? { action: "accept", content: { approve: true } }
    : { action: "decline" };
});
await client.connect(transport());

const attempt = async (f) => {
  try {
    return await f();
  } catch (e) {
    return { error: { code: e.code, message: e.message, data: e.data ?? null } };
  }
};
const read = await attempt(() => client.readResource({ uri: env("RESOURCE") }));
answer = "decline";
const prompt = await attempt(() =>
  client.getPrompt({ name: "args-prompt", arguments: { city: "Paris" } }),
);
await client.close();

const plainClient = new Client({ name: "portcullis-e2e-plain", version: "1.0.0" });
await plainClient.connect(transport());
const plain = await attempt(() => plainClient.readResource({ uri: env("RESOURCE") }));
await plainClient.close();

process.stdout.write(JSON.stringify({ read, prompt, asked, plain }) + "\n");
