'use strict';
// A local OpenID Connect provider that stands in for Google in tests.
//
// Env:
//   OIDC_PORT       port to listen on (127.0.0.1); 0 picks a free one.
//   OIDC_OVERRIDES  path of a JSON object file, read on every token request; its keys are
//                   merged into the ID token claims (a null value removes the claim).
//
// Issuer: http://127.0.0.1:<port>. Prints "ready" on stdout once listening.
//
// oauth2-mock-server itself: /authorize redirects straight back with code + state, remembers the
// nonce per code and puts it into the ID token, sets aud = client_id (form or HTTP basic), and
// checks code_verifier against the code_challenge (plain or S256) when a verifier is sent.
// On top of that, like Google, this server rejects (400 invalid_grant) a token request whose code
// was not issued by /authorize or was already used, whose client_id or redirect_uri differ from
// the authorize request, or that omits code_verifier for a code issued with a code_challenge.

const fs = require('node:fs');
const basicAuth = require('basic-auth');
const { OAuth2Server } = require('oauth2-mock-server');

const DEFAULT_CLAIMS = Object.freeze({
  sub: 'google-sub-1',
  email: 'oidc-user@example.com',
  email_verified: true,
});

function readOverrides() {
  const file = process.env.OIDC_OVERRIDES;
  if (!file) return {};
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return {};
    throw e;
  }
  const value = JSON.parse(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${file} must hold a JSON object`);
  }
  return value;
}

function applyClaims(payload, claims) {
  for (const [key, value] of Object.entries(claims)) {
    if (value === null) delete payload[key];
    else payload[key] = value;
  }
}

function clientIdOf(req) {
  const credentials = basicAuth(req);
  return credentials ? credentials.name : req.body.client_id;
}

async function main() {
  const port = Number.parseInt(process.env.OIDC_PORT ?? '', 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error('OIDC_PORT must be a port number');
  }

  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');

  // code -> { clientId, redirectUri, pkce } for codes issued and not yet redeemed.
  const codes = new Map();

  server.service.on('beforeAuthorizeRedirect', (authorizeRedirectUri, req) => {
    const code = authorizeRedirectUri.url.searchParams.get('code');
    if (code) {
      codes.set(code, {
        clientId: req.query.client_id,
        redirectUri: req.query.redirect_uri,
        pkce: typeof req.query.code_challenge === 'string' && req.query.code_challenge !== '',
      });
    }
  });

  server.service.on('beforeTokenSigning', (token, req) => {
    // The mock signs the access token first (it has "scope"), then the ID token (no "scope").
    if ('scope' in token.payload) return;
    const clientId = clientIdOf(req);
    applyClaims(token.payload, DEFAULT_CLAIMS);
    if (clientId !== undefined) token.payload.azp = clientId;
    applyClaims(token.payload, readOverrides());
  });

  server.service.on('beforeResponse', (tokenEndpointResponse, req) => {
    if (req.body.grant_type !== 'authorization_code') return;
    const reject = (description) => {
      tokenEndpointResponse.statusCode = 400;
      tokenEndpointResponse.body = { error: 'invalid_grant', error_description: description };
    };
    const issued = codes.get(req.body.code);
    if (issued === undefined) return reject('unknown or already used code');
    codes.delete(req.body.code);
    if (issued.clientId !== clientIdOf(req)) return reject('client_id does not match the code');
    if (issued.redirectUri !== req.body.redirect_uri) {
      return reject('redirect_uri does not match the code');
    }
    if (issued.pkce && !req.body.code_verifier) return reject('code_verifier required');
  });

  server.service.on('beforeUserinfo', (userInfoResponse) => {
    const body = {};
    applyClaims(body, DEFAULT_CLAIMS);
    applyClaims(body, readOverrides());
    userInfoResponse.body = body;
  });

  await server.start(port, '127.0.0.1');
  server.issuer.url = `http://127.0.0.1:${server.address().port}`;

  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  process.stdout.write('ready\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
