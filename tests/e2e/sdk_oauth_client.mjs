// The official MCP TypeScript SDK client against `portcullis --transport http
// --jwks-file ...` (the endpoint as an OAuth resource server) in front of
// server-everything, started by tests/oauth.rs:
//   with:    an OAuthClientProvider whose tokens() is TOKEN (a JWT the test
//            signed): connect, tools/list, tools/call echo;
//   without: no credentials: the 401, the resource_metadata URL the SDK reads
//            from WWW-Authenticate, and the metadata the SDK discovers there.
// Prints one JSON object {with, without}.

import { env, sdk } from "./scenario.mjs";

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { extractWWWAuthenticateParams, discoverOAuthProtectedResourceMetadata } =
  await sdk("client/auth.js");

const url = new URL(env("PROXY_URL"));

// Tokens come from the test; nothing here runs an authorization flow.
const provider = {
  get redirectUrl() {
    return "http://127.0.0.1/callback";
  },
  get clientMetadata() {
    return { redirect_uris: ["http://127.0.0.1/callback"], client_name: "portcullis-e2e" };
  },
  clientInformation: () => ({ client_id: "portcullis-e2e" }),
  tokens: () => ({ access_token: env("TOKEN"), token_type: "Bearer" }),
  saveTokens: () => {},
  redirectToAuthorization: () => {
    throw new Error("no authorization flow in this test");
  },
  saveCodeVerifier: () => {},
  codeVerifier: () => "unused",
};

const withToken = {};
{
  const client = new Client({ name: "portcullis-e2e-oauth", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider }));
  const tools = await client.listTools();
  withToken.tools = tools.tools.map((t) => t.name);
  const r = await client.callTool({ name: "echo", arguments: { message: "hello-oauth" } });
  withToken.echo = r.content?.[0]?.text;
  await client.close();
}

const without = {};
{
  let last;
  const recording = async (input, init) => {
    last = await fetch(input, init);
    return last;
  };
  const client = new Client({ name: "portcullis-e2e-oauth", version: "1.0.0" });
  try {
    await client.connect(new StreamableHTTPClientTransport(url, { fetch: recording }));
    without.connected = true;
  } catch (e) {
    without.error = { name: e.name, code: e.code, message: e.message };
  }
  without.status = last?.status;
  const { resourceMetadataUrl, scope, error } = extractWWWAuthenticateParams(last);
  without.resourceMetadataUrl = resourceMetadataUrl?.href;
  without.scope = scope;
  without.wwwError = error;
  without.metadata = await discoverOAuthProtectedResourceMetadata(url, { resourceMetadataUrl });
}

process.stdout.write(JSON.stringify({ with: withToken, without }) + "\n");
