#!/usr/bin/env node
// Loopback OAuth 2.0 / OpenID Connect authorization server for qlam tests.
//
//   node server.mjs [--tls-cert FILE --tls-key FILE] [--access-token-ttl SECONDS]
//                   [--refresh-token-ttl SECONDS] [--device-interval SECONDS]
//                   [--no-slow-down] [--strict-offline-access] [--log FILE]
//                   [--ignore-stdin] [--client-key-out FILE] [--client-rsa-key-out FILE]
//
// Listens on 127.0.0.1 with an ephemeral port, then prints exactly one JSON
// line on stdout: {"issuer":"https://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr. Exits on SIGTERM/SIGINT and when stdin
// reaches end-of-file. See README.md.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs, promisify } from 'node:util';

// stdout carries exactly one line (the ready line). oidc-provider prints its
// NOTICE messages with console.info (stdout), so send every console method
// to stderr; the ready line is written with process.stdout.write.
for (const method of ['log', 'info', 'debug', 'trace', 'dir']) {
  console[method] = (...args) => console.error(...args);
}

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const LOOPBACK_REDIRECT = 'http://127.0.0.1/callback';

function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

function positiveInt(name, value, fallback) {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) === 0) {
    fail(`--${name} must be a positive integer (seconds), got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

// Start the (slow, thread-pool) RSA key generation for the ID token signing key
// while the main thread parses the options and loads oidc-provider.
const generateKeyPair = promisify(crypto.generateKeyPair);
const signingKeyPair = generateKeyPair('rsa', { modulusLength: 2048 });

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'access-token-ttl': { type: 'string' },
      'refresh-token-ttl': { type: 'string' },
      'device-interval': { type: 'string' },
      'no-slow-down': { type: 'boolean', default: false },
      'strict-offline-access': { type: 'boolean', default: false },
      log: { type: 'string' },
      'ignore-stdin': { type: 'boolean', default: false },
      'client-key-out': { type: 'string' },
      'client-rsa-key-out': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  fail(err.message);
}

if (args.help) {
  process.stderr.write(`usage: node server.mjs [--tls-cert FILE --tls-key FILE] [--access-token-ttl SECONDS]
                      [--refresh-token-ttl SECONDS] [--device-interval SECONDS] [--no-slow-down]
                      [--strict-offline-access] [--log FILE] [--ignore-stdin]
                      [--client-key-out FILE] [--client-rsa-key-out FILE]
`);
  process.exit(0);
}

// private_key_jwt clients (RFC 7523 client assertions), each registered only
// when its option names a file for the client's private key. The key pairs are
// generated in the thread pool while oidc-provider loads.
const JWT_CLIENTS = [
  {
    option: 'client-key-out', clientId: 'qlam-jwt', kid: 'qlam-jwt-key', alg: 'ES256',
    type: 'ec', keyOptions: { namedCurve: 'P-256' },
  },
  {
    option: 'client-rsa-key-out', clientId: 'qlam-jwt-rsa', kid: 'qlam-jwt-rsa-key', alg: 'RS256',
    type: 'rsa', keyOptions: { modulusLength: 2048 },
  },
].filter((c) => args[c.option] !== undefined);
for (const c of JWT_CLIENTS) {
  if (args[c.option] === '') fail(`--${c.option} needs a file name`);
}
if (JWT_CLIENTS.length === 2 && args['client-key-out'] === args['client-rsa-key-out']) {
  fail('--client-key-out and --client-rsa-key-out must name different files');
}
for (const c of JWT_CLIENTS) c.keyPair = generateKeyPair(c.type, c.keyOptions);

const { default: Provider, errors } = await import('oidc-provider');

if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) {
  fail('--tls-cert and --tls-key must be given together');
}

const accessTokenTTL = positiveInt('access-token-ttl', args['access-token-ttl'], 60);
const refreshTokenTTL = positiveInt('refresh-token-ttl', args['refresh-token-ttl'], 14 * 24 * 60 * 60);
const deviceInterval = positiveInt('device-interval', args['device-interval'], 1);
const enforceSlowDown = !args['no-slow-down'];
const strictOfflineAccess = args['strict-offline-access'];

// ---------------------------------------------------------------------------
// Event log (one JSON object per line, appended synchronously so that the line
// is on disk before the HTTP response that caused it is sent).
// ---------------------------------------------------------------------------
let logFd;
if (args.log) {
  try {
    logFd = fs.openSync(args.log, 'a');
  } catch (err) {
    fail(`cannot open log file ${args.log}: ${err.message}`);
  }
}

function logEvent(event, fields = {}) {
  if (logFd === undefined) return;
  const record = { ts: new Date().toISOString(), event };
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) record[key] = value;
  }
  try {
    fs.writeSync(logFd, `${JSON.stringify(record)}\n`);
  } catch (err) {
    process.stderr.write(`server.mjs: cannot write log: ${err.message}\n`);
  }
}

// ---------------------------------------------------------------------------
// HTTP(S) server first: the issuer has to contain the ephemeral port.
// ---------------------------------------------------------------------------
let server;
if (args['tls-cert']) {
  let cert;
  let key;
  try {
    cert = fs.readFileSync(args['tls-cert']);
    key = fs.readFileSync(args['tls-key']);
  } catch (err) {
    fail(`cannot read TLS material: ${err.message}`);
  }
  try {
    server = https.createServer({ cert, key });
  } catch (err) {
    fail(`invalid TLS certificate/key: ${err.message}`);
  }
} else {
  server = http.createServer();
}
const scheme = args['tls-cert'] ? 'https' : 'http';

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', () => {
    server.off('error', reject);
    resolve();
  });
}).catch((err) => fail(`cannot listen on 127.0.0.1: ${err.message}`));

const { port } = server.address();
const issuer = `${scheme}://127.0.0.1:${port}`;

// ---------------------------------------------------------------------------
// Provider configuration.
// ---------------------------------------------------------------------------
const { privateKey } = await signingKeyPair;
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `qlam-test-${crypto.randomBytes(4).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

// Write each private_key_jwt client's private key (PKCS#8 PEM, mode 0600) now,
// before the ready line, and build its client metadata with the public JWK.
const jwtClientMetadata = [];
for (const c of JWT_CLIENTS) {
  const { privateKey: clientPrivateKey, publicKey: clientPublicKey } = await c.keyPair;
  const file = args[c.option];
  try {
    const fd = fs.openSync(file, 'w', 0o600);
    try {
      fs.fchmodSync(fd, 0o600); // the file may have existed with another mode
      fs.writeSync(fd, clientPrivateKey.export({ type: 'pkcs8', format: 'pem' }));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    fail(`--${c.option}: cannot write ${file}: ${err.message}`);
  }
  jwtClientMetadata.push({
    // Confidential native client authenticating with private_key_jwt; the
    // assertion must be signed with c.alg (token_endpoint_auth_signing_alg).
    client_id: c.clientId,
    client_name: `qlam ${c.clientId} (private_key_jwt, ${c.alg})`,
    application_type: 'native',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: c.alg,
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [LOOPBACK_REDIRECT],
    jwks: {
      keys: [{ ...clientPublicKey.export({ format: 'jwk' }), kid: c.kid, alg: c.alg, use: 'sig' }],
    },
  });
}

function accountClaims(accountId) {
  return {
    sub: accountId,
    name: accountId,
    preferred_username: accountId,
    email: `${accountId}@example.test`,
    email_verified: true,
  };
}

const configuration = {
  clients: [
    {
      // Public native client (RFC 8252). oidc-provider ignores the port of an
      // http loopback redirect URI for application_type "native" clients when
      // comparing, so http://127.0.0.1:ANYPORT/callback is accepted.
      client_id: 'qlam-cli',
      client_name: 'qlam CLI',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
      response_types: ['code'],
      redirect_uris: [LOOPBACK_REDIRECT],
    },
    {
      // Confidential client. Registered as client_secret_basic; oidc-provider
      // accepts client_secret_post as well for a client registered with either.
      // application_type "native" so that the loopback redirect accepts any port.
      client_id: 'qlam-service',
      client_name: 'qlam service',
      client_secret: 'qlam-service-secret',
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [LOOPBACK_REDIRECT],
    },
    ...jwtClientMetadata,
  ],

  // Client authentication methods and client assertion algorithms. These are
  // oidc-provider 9's defaults, spelled out because the private_key_jwt
  // clients (qlam-jwt: ES256, qlam-jwt-rsa: RS256) depend on them.
  clientAuthMethods: ['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'Ed25519', 'EdDSA'],
  },

  jwks: { keys: [signingKey] },
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
  },

  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return accountClaims(sub);
      },
    };
  },

  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // openid/profile/email come from `claims`; offline_access and the custom
  // scope `api` have to be listed here.
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api'],

  // PKCE (S256 is the only method oidc-provider 9 implements) for every
  // authorization code request, public and confidential clients alike.
  pkce: {
    required: () => true,
  },

  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: {
      enabled: true,
      // Same policy as oidc-provider's default, spelled out (which also keeps
      // its "you SHOULD change this" notice out of the output).
      async allowedPolicy(ctx, client, token) {
        if (token.clientId !== client.clientId) {
          if (client.clientAuthMethod === 'none') return false; // silently ignored
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    // Without resource indicators every access token is an opaque token for
    // the userinfo endpoint (no `resource` handling to configure).
    resourceIndicators: { enabled: false },
  },

  // Refresh tokens: issued whenever the client may use the refresh_token grant
  // and `offline_access` was granted (this is also oidc-provider's default; it
  // is spelled out so that it is visible). Note that oidc-provider drops
  // `offline_access` from an authorization request whose `prompt` does not
  // contain `consent` (no prompt at all included): see the middleware below.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },

  // Rotation on every use for public clients; confidential clients keep their
  // refresh token until 70% of its lifetime has passed (oidc-provider default).
  rotateRefreshToken(ctx) {
    const { RefreshToken: refreshToken, Client: client } = ctx.oidc.entities;
    if (client.clientAuthMethod === 'none') return true;
    return refreshToken.ttlPercentagePassed() >= 70;
  },

  ttl: {
    AccessToken: () => accessTokenTTL,
    ClientCredentials: () => accessTokenTTL,
    AuthorizationCode: () => 60,
    DeviceCode: () => 600,
    IdToken: () => 3600,
    RefreshToken: () => refreshTokenTTL,
    Interaction: () => 600,
    Session: () => 24 * 60 * 60,
    Grant: () => Math.max(refreshTokenTTL, 24 * 60 * 60),
  },

  async renderError(ctx, out) {
    ctx.type = 'html';
    const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>oops! something went wrong</title></head>
<body><h1>oops! something went wrong</h1>
<pre id="error">${Object.entries(out).map(([k, v]) => `${escape(k)}: ${escape(v)}`).join('\n')}</pre>
</body></html>`;
  },
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`invalid provider configuration: ${err.stack || err}`);
}

// ---------------------------------------------------------------------------
// Events and post-processing middleware.
// ---------------------------------------------------------------------------
provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server.mjs: server_error on ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
  logEvent('server_error', { path: ctx.path, message: String(err.message || err) });
});

// The token endpoint is logged from the middleware below (it knows the final
// status after any rewrite); the event only stashes the error for its detail.
provider.on('grant.error', (ctx, err) => {
  ctx.state.qlamGrantError = err;
});

provider.on('grant.revoked', (ctx, grantId) => {
  logEvent('grant.revoked', {
    grant_id: grantId,
    client_id: ctx.oidc?.client?.clientId,
    route: ctx.oidc?.route,
  });
});

provider.on('authorization.success', (ctx) => {
  logEvent('authorization.success', {
    route: ctx.oidc?.route,
    client_id: ctx.oidc?.client?.clientId,
    account_id: ctx.oidc?.session?.accountId,
  });
});

provider.on('authorization.error', (ctx, err) => {
  logEvent('authorization.error', {
    client_id: ctx.oidc?.client?.clientId,
    error: err.error,
    error_description: err.error_description,
    error_detail: err.error_detail,
  });
});

provider.on('device_authorization.success', (ctx, body) => {
  logEvent('device_authorization.success', {
    client_id: ctx.oidc?.client?.clientId,
    scope: ctx.oidc?.params?.scope,
    user_code: body?.user_code,
  });
});

provider.on('device_authorization.error', (ctx, err) => {
  logEvent('device_authorization.error', {
    client_id: ctx.oidc?.client?.clientId,
    error: err.error,
    error_detail: err.error_detail,
  });
});

provider.on('revocation.error', (ctx, err) => {
  ctx.state.qlamRevocationError = err;
});

provider.on('userinfo.error', (ctx, err) => {
  logEvent('userinfo.error', { error: err.error, error_detail: err.error_detail });
});

// device_code (sha256) -> time of the last poll in ms
const lastDevicePoll = new Map();

// How a token or revocation request authenticated the client, read
// from the request itself (so also for failed requests): the method, and for a
// client assertion its (unverified) header alg/kid and its aud, iss and sub.
function clientAuthFields(ctx, params) {
  const authorization = ctx.headers.authorization;
  if (typeof authorization === 'string' && /^basic /i.test(authorization)) {
    return { client_auth_method: 'client_secret_basic' };
  }
  if (params.client_assertion !== undefined) {
    const fields = { client_auth_method: 'private_key_jwt' };
    try {
      const [header, payload] = String(params.client_assertion).split('.', 2)
        .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
      if (typeof header.alg === 'string' && header.alg.startsWith('HS')) {
        fields.client_auth_method = 'client_secret_jwt';
      }
      Object.assign(fields, {
        client_assertion_alg: header.alg,
        client_assertion_kid: header.kid,
        client_assertion_aud: payload.aud,
        client_assertion_iss: payload.iss,
        client_assertion_sub: payload.sub,
      });
    } catch {
      fields.client_assertion_alg = 'unparseable';
    }
    return fields;
  }
  if (params.client_secret !== undefined) return { client_auth_method: 'client_secret_post' };
  return { client_auth_method: 'none' };
}

const authorizationPath = new URL(provider.urlFor('authorization')).pathname;

provider.use(async (ctx, next) => {
  // OpenID Connect Core 1.0 §11: oidc-provider silently drops `offline_access`
  // from an authorization request unless its prompt contains `consent` (so no
  // refresh token would be issued). Test clients should get a refresh token
  // whenever they ask for offline_access, so add `consent` to the prompt of
  // such GET authorization requests (the user is asked for consent anyway).
  // prompt=none is left alone. --strict-offline-access turns this off.
  if (!strictOfflineAccess && ctx.method === 'GET' && ctx.path === authorizationPath) {
    const query = new URLSearchParams(ctx.querystring);
    const scopes = query.getAll('scope');
    const prompts = query.getAll('prompt');
    if (scopes.length === 1 && scopes[0].split(' ').includes('offline_access') && prompts.length <= 1) {
      const prompt = (prompts[0] || '').split(' ').filter(Boolean);
      if (!prompt.includes('consent') && !prompt.includes('none')) {
        prompt.push('consent');
        query.set('prompt', prompt.join(' '));
        ctx.querystring = query.toString();
      }
    }
  }

  await next();

  const route = ctx.oidc?.route;
  if (route === 'device_authorization') {
    if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && ctx.body.device_code) {
      // oidc-provider does not announce a polling interval (RFC 8628 then
      // means 5 seconds); announce ours so that tests do not wait 5 s per poll.
      ctx.body = { ...ctx.body, interval: deviceInterval };
    }
    return;
  }

  if (route === 'token') {
    const params = ctx.oidc.params || ctx.oidc.body || {};
    const grantType = params.grant_type;
    const authFields = clientAuthFields(ctx, params);
    const clientId = ctx.oidc.client?.clientId ?? params.client_id ?? authFields.client_assertion_sub;
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};

    if (grantType === DEVICE_CODE_GRANT && typeof params.device_code === 'string') {
      const key = crypto.createHash('sha256').update(params.device_code).digest('hex');
      const now = Date.now();
      const previous = lastDevicePoll.get(key);
      lastDevicePoll.set(key, now);
      if (lastDevicePoll.size > 10000) lastDevicePoll.delete(lastDevicePoll.keys().next().value);
      if (
        enforceSlowDown
        && body.error === 'authorization_pending'
        && previous !== undefined
        && now - previous < deviceInterval * 1000 - 100
      ) {
        ctx.body = {
          error: 'slow_down',
          error_description: `you are polling too quickly; wait at least ${deviceInterval} s between requests`,
        };
        ctx.status = 400;
        ctx.state.qlamGrantError = undefined;
      }
    }

    if (ctx.status === 200) {
      const entities = ctx.oidc.entities || {};
      logEvent('grant.success', {
        grant_type: grantType,
        client_id: clientId,
        account_id: ctx.oidc.account?.accountId ?? entities.Account?.accountId,
        scope: ctx.body?.scope,
        refresh_token_issued: Boolean(ctx.body?.refresh_token),
        refresh_token_rotated: grantType === 'refresh_token' ? Boolean(entities.RotatedRefreshToken) : undefined,
        grant_id: entities.Grant?.jti,
        ...authFields,
      });
    } else {
      const err = ctx.state.qlamGrantError;
      const finalBody = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
      logEvent('grant.error', {
        grant_type: grantType,
        client_id: clientId,
        error: finalBody.error ?? err?.error,
        error_description: finalBody.error_description,
        error_detail: err?.error_detail,
        status: ctx.status,
        ...authFields,
      });
      if (grantType === 'refresh_token' && err?.error_detail === 'refresh token already used') {
        logEvent('refresh_token.reuse', {
          client_id: clientId,
          grant_id: ctx.oidc.entities?.Grant?.jti,
        });
      }
    }
    return;
  }

  if (route === 'revocation') {
    const params = ctx.oidc.params || ctx.oidc.body || {};
    const authFields = clientAuthFields(ctx, params);
    const clientId = ctx.oidc.client?.clientId ?? params.client_id ?? authFields.client_assertion_sub;
    if (ctx.status === 200) {
      const entities = ctx.oidc.entities || {};
      const kind = ['RefreshToken', 'AccessToken', 'ClientCredentials'].find((k) => entities[k]);
      logEvent('revocation.success', {
        client_id: clientId,
        token_type_hint: params.token_type_hint,
        token_kind: kind ?? 'none',
        ...authFields,
      });
    } else {
      const err = ctx.state.qlamRevocationError;
      logEvent('revocation.error', {
        client_id: clientId,
        error: ctx.body?.error ?? err?.error,
        error_detail: err?.error_detail,
        ...authFields,
      });
    }
  }
});

server.on('request', provider.callback());

// ---------------------------------------------------------------------------
// Ready line and shutdown.
// ---------------------------------------------------------------------------
let shuttingDown = false;
function shutdown(reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  process.stderr.write(`server.mjs: shutting down (${reason})\n`);
  logEvent('server.stop', { reason });
  const timer = setTimeout(() => process.exit(0), 2000);
  timer.unref();
  server.close(() => process.exit(0));
  server.closeIdleConnections?.();
  setImmediate(() => server.closeAllConnections?.());
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

function stdinIsDevNull() {
  try {
    const st = fs.fstatSync(0);
    if (!st.isCharacterDevice()) return false;
    const devNull = fs.statSync('/dev/null');
    return st.rdev === devNull.rdev;
  } catch {
    return true; // stdin closed / not available: nothing to watch
  }
}

if (args['ignore-stdin']) {
  process.stderr.write('server.mjs: --ignore-stdin: not watching stdin; stop with SIGTERM\n');
} else if (stdinIsDevNull()) {
  process.stderr.write('server.mjs: stdin is /dev/null or closed; not watching it; stop with SIGTERM\n');
} else {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.on('data', () => {}); // discard input
  process.stdin.resume();
}

logEvent('server.ready', {
  issuer,
  port,
  access_token_ttl: accessTokenTTL,
  device_interval: deviceInterval,
  jwt_clients: JWT_CLIENTS.length ? JWT_CLIENTS.map((c) => c.clientId) : undefined,
});
process.stderr.write(`server.mjs: ${issuer} ready after ${Math.round(performance.now())} ms (access token TTL ${accessTokenTTL} s, device interval ${deviceInterval} s)\n`);
process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
