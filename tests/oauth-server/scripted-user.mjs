#!/usr/bin/env node
// A scripted "user" for the oidc-provider test server: plain HTTP(S) with a
// cookie jar, no browser.
//
//   node scripted-user.mjs [--ca FILE] [--user NAME] [--deny] URL
//   node scripted-user.mjs [--ca FILE] [--user NAME] [--deny] device VERIFICATION_URI [USER_CODE]
//
// Authorization-code mode: URL is an authorization URL (what qlam hands to
// $BROWSER). Follows redirects on the issuer, logs in as NAME (any password),
// consents (or cancels with --deny), then GETs the final redirect to the
// client's loopback redirect_uri (only http(s)://127.0.0.1 is allowed).
//
// Device mode: enters USER_CODE on the verification page (USER_CODE may be
// omitted when VERIFICATION_URI is verification_uri_complete), logs in,
// consents (or cancels with --deny) and stops on the result page.
//
// Exit status: 0 success; 1 failure (message on stderr); 2 usage error;
// 3 the callback was delivered but the outcome was not the expected one
// (a code although --deny was given, or --deny without access_denied).

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

const MAX_STEPS = 40;
const TIMEOUT_MS = 15000;

function log(message) {
  process.stderr.write(`scripted-user: ${message}\n`);
}

class Failure extends Error {
  constructor(message, code = 1) {
    super(message);
    this.exitCode = code;
  }
}

function usage(message) {
  if (message) log(message);
  process.stderr.write(`usage: node scripted-user.mjs [--ca FILE] [--user NAME] [--deny] AUTHORIZATION_URL
       node scripted-user.mjs [--ca FILE] [--user NAME] [--deny] device VERIFICATION_URI [USER_CODE]
`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      ca: { type: 'string' },
      user: { type: 'string', default: 'alice' },
      password: { type: 'string', default: 'any-password' },
      deny: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  usage(err.message);
}
const { values: opts, positionals } = parsed;
if (opts.help) usage();

let mode;
let startUrl;
let userCode;
if (positionals[0] === 'device') {
  mode = 'device';
  if (positionals.length < 2 || positionals.length > 3) usage('device mode needs VERIFICATION_URI [USER_CODE]');
  [, startUrl, userCode] = positionals;
} else {
  mode = 'code';
  if (positionals.length !== 1) usage('expected exactly one AUTHORIZATION_URL');
  [startUrl] = positionals;
}

let start;
try {
  start = new URL(startUrl);
} catch {
  usage(`not a URL: ${startUrl}`);
}
if (!['http:', 'https:'].includes(start.protocol)) usage(`unsupported URL scheme: ${start.protocol}`);
if (mode === 'device' && !userCode && !start.searchParams.get('user_code')) {
  usage('USER_CODE is required unless VERIFICATION_URI contains user_code');
}

let ca;
if (opts.ca) {
  try {
    ca = fs.readFileSync(opts.ca);
  } catch (err) {
    usage(`cannot read --ca ${opts.ca}: ${err.message}`);
  }
}
// Without --ca, node's default trust store applies, which includes
// NODE_EXTRA_CA_CERTS (read by node at process start).
const httpsAgent = new https.Agent(ca ? { ca } : {});
const issuerOrigin = start.origin;

// ---------------------------------------------------------------------------
// Cookie jar (RFC 6265 subset: name, value, path, expiry). Cookies are only
// ever stored from and sent to the issuer origin.
// ---------------------------------------------------------------------------
class CookieJar {
  #cookies = new Map();

  store(url, setCookieHeaders) {
    for (const header of setCookieHeaders || []) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path;
      let expired = false;
      let secure = false;
      for (const attr of attrs) {
        const [rawKey, ...rest] = attr.split('=');
        const key = rawKey.trim().toLowerCase();
        const val = rest.join('=').trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        if (key === 'max-age' && Number(val) <= 0) expired = true;
        if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
        if (key === 'secure') secure = true;
      }
      if (!path) {
        const dir = url.pathname.slice(0, url.pathname.lastIndexOf('/'));
        path = dir || '/';
      }
      const id = `${name}\n${path}`;
      if (expired) {
        this.#cookies.delete(id);
      } else {
        this.#cookies.set(id, { name, value, path, secure });
      }
    }
  }

  header(url) {
    const matches = [...this.#cookies.values()].filter((c) => {
      if (c.secure && url.protocol !== 'https:') return false;
      const p = url.pathname;
      if (p === c.path) return true;
      if (!p.startsWith(c.path)) return false;
      return c.path.endsWith('/') || p[c.path.length] === '/';
    });
    matches.sort((a, b) => b.path.length - a.path.length);
    return matches.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}
const jar = new CookieJar();

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------
function send(method, url, { form, cookies = true } = {}) {
  return new Promise((resolve, reject) => {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const headers = { accept: 'text/html,application/json;q=0.9,*/*;q=0.8', 'user-agent': 'qlam-scripted-user/1' };
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    if (cookies && url.origin === issuerOrigin) {
      const cookieHeader = jar.header(url);
      if (cookieHeader) headers.cookie = cookieHeader;
    }
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.request(url, {
      method,
      headers,
      agent: url.protocol === 'https:' ? httpsAgent : undefined,
      timeout: TIMEOUT_MS,
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        if (cookies && url.origin === issuerOrigin) jar.store(url, res.headers['set-cookie']);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          url,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function tlsHint(err) {
  const code = String(err.code || '');
  if (/CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/.test(code)) {
    return ` (${code}; pass the test CA with --ca FILE or NODE_EXTRA_CA_CERTS)`;
  }
  return '';
}

// ---------------------------------------------------------------------------
// Minimal HTML form scraping (the pages are oidc-provider's built-in ones).
// ---------------------------------------------------------------------------
function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (m, e) => {
    const lower = e.toLowerCase();
    if (lower === 'amp') return '&';
    if (lower === 'lt') return '<';
    if (lower === 'gt') return '>';
    if (lower === 'quot') return '"';
    if (lower === 'apos') return "'";
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    return String.fromCodePoint(parseInt(lower.slice(1), 10));
  });
}

function parseAttrs(s) {
  const attrs = {};
  const re = /([a-zA-Z_:][-\w:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
  let m;
  while ((m = re.exec(s))) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function parseForms(html, baseUrl) {
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = formRe.exec(html))) {
    const attrs = parseAttrs(m[1]);
    const inputs = [];
    const inputRe = /<input\b([^>]*)>/gi;
    let im;
    while ((im = inputRe.exec(m[2]))) {
      const a = parseAttrs(im[1]);
      if (a.name) inputs.push({ name: a.name, value: a.value ?? '', type: (a.type || 'text').toLowerCase() });
    }
    forms.push({
      id: attrs.id,
      method: (attrs.method || 'get').toUpperCase(),
      action: new URL(attrs.action || baseUrl.href, baseUrl),
      inputs,
      fields: Object.fromEntries(inputs.map((i) => [i.name, i.value])),
    });
  }
  return forms;
}

function pageText(html) {
  const text = html
    .replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<details\b[\s\S]*?<\/details>/gi, ' ')
    .replace(/<[^>]+>/g, ' ');
  return decodeEntities(text).replace(/\s+/g, ' ').trim().slice(0, 500);
}

function pageTitle(html) {
  const m = /<title>([\s\S]*?)<\/title>/i.exec(html);
  return m ? decodeEntities(m[1]).trim() : '';
}

// ---------------------------------------------------------------------------
// The final redirect to the client (authorization code mode).
// ---------------------------------------------------------------------------
async function deliverCallback(target, method = 'GET', form = undefined) {
  if (target.hostname !== '127.0.0.1' || !['http:', 'https:'].includes(target.protocol)) {
    throw new Failure(`refusing to follow the redirect to ${target.origin}: only http(s)://127.0.0.1 redirect URIs are followed`);
  }
  const params = form ? new URLSearchParams(form) : target.searchParams;
  const code = params.get('code');
  const error = params.get('error');
  const iss = params.get('iss');
  log(`redirect to client: ${target.origin}${target.pathname} code=${code ? 'yes' : 'no'} error=${error ?? '-'}`
    + ` state=${params.get('state') ?? '-'} iss=${iss ?? '-'}`);
  if (error) log(`error_description: ${params.get('error_description') ?? '-'}`);
  if (!iss) log('warning: no iss parameter in the authorization response');
  else if (iss !== issuerOrigin) log(`warning: iss ${iss} differs from the issuer origin ${issuerOrigin}`);

  let res;
  try {
    res = await send(method, target, { form, cookies: false });
  } catch (err) {
    throw new Failure(`callback ${method} ${target.origin}${target.pathname} failed: ${err.message}${tlsHint(err)}`);
  }
  log(`callback answered HTTP ${res.status}`);

  if (opts.deny) {
    if (error === 'access_denied') return 0;
    log(`expected error=access_denied because of --deny, got ${error ? `error=${error}` : 'a code'}`);
    return 3;
  }
  if (!code) log(`note: the redirect carried no code (error=${error ?? '-'}); it was delivered anyway`);
  return 0;
}

// ---------------------------------------------------------------------------
// The user agent loop.
// ---------------------------------------------------------------------------
async function run() {
  let method = 'GET';
  let url = start;
  let form;
  let submittedUserCode = false;
  let submittedLogin = false;
  let denied = false;

  for (let step = 0; step < MAX_STEPS; step += 1) {
    let res;
    try {
      res = await send(method, url, { form });
    } catch (err) {
      throw new Failure(`${method} ${url.origin}${url.pathname} failed: ${err.message}${tlsHint(err)}`);
    }
    log(`${method} ${url.pathname} -> ${res.status}`);
    form = undefined;

    if ([301, 302, 303, 307, 308].includes(res.status)) {
      const location = res.headers.location;
      if (!location) throw new Failure(`HTTP ${res.status} without Location from ${url.href}`);
      const next = new URL(location, url);
      if (next.origin === issuerOrigin) {
        if (res.status === 307 || res.status === 308) {
          throw new Failure(`unexpected HTTP ${res.status} redirect within the issuer to ${next.href}`);
        }
        method = 'GET';
        url = next;
        continue;
      }
      if (mode === 'device') {
        throw new Failure(`device flow: unexpected redirect away from the issuer to ${next.origin}`);
      }
      return deliverCallback(next);
    }

    const html = res.body;
    const forms = parseForms(html, url);
    const title = pageTitle(html);

    // oidc-provider's error page (renderError) and other error statuses.
    if (res.status >= 400 && !forms.some((f) => f.id === 'op.deviceInputForm')) {
      throw new Failure(`HTTP ${res.status} from ${url.pathname}: ${pageText(html)}`);
    }

    // Dev interaction: login
    const loginForm = forms.find((f) => f.fields.prompt === 'login');
    if (loginForm) {
      if (submittedLogin) throw new Failure('login page shown again after logging in');
      submittedLogin = true;
      log(`logging in as ${opts.user}`);
      method = loginForm.method;
      url = loginForm.action;
      form = { ...loginForm.fields, login: opts.user, password: opts.password };
      continue;
    }

    // Dev interaction: consent
    const consentForm = forms.find((f) => f.fields.prompt === 'consent');
    if (consentForm) {
      if (opts.deny) {
        const abort = /<a\b[^>]*href="([^"]*\/abort)"/i.exec(html);
        if (!abort) throw new Failure('consent page has no [ Cancel ] link to deny with');
        log('denying consent ([ Cancel ])');
        denied = true;
        method = 'GET';
        url = new URL(decodeEntities(abort[1]), url);
        continue;
      }
      log('granting consent');
      method = consentForm.method;
      url = consentForm.action;
      form = { ...consentForm.fields };
      continue;
    }

    // Device flow: user code input page
    const inputForm = forms.find((f) => f.id === 'op.deviceInputForm');
    if (inputForm) {
      const text = pageText(html);
      if (/interrupted/i.test(text) && denied) {
        log('device flow: sign-in request was cancelled as asked (--deny)');
        return 0;
      }
      if (submittedUserCode) throw new Failure(`device flow: user code page shown again: ${text}`);
      if (!userCode) throw new Failure('device flow: the user code page asks for a code but none was given');
      submittedUserCode = true;
      log(`entering user code ${userCode}`);
      method = inputForm.method;
      url = inputForm.action;
      form = { ...inputForm.fields, user_code: userCode };
      continue;
    }

    // Device flow: "Confirm Device"
    const confirmForm = forms.find((f) => f.id === 'op.deviceConfirmForm');
    if (confirmForm) {
      log(`confirming device (user code ${confirmForm.fields.user_code})`);
      submittedUserCode = true;
      method = confirmForm.method;
      url = confirmForm.action;
      form = { ...confirmForm.fields };
      continue;
    }

    // Device flow: success page
    if (mode === 'device' && /Sign-in Success/i.test(title)) {
      if (opts.deny) {
        log('device flow: sign-in succeeded although --deny was given');
        return 3;
      }
      log(`device flow: ${pageText(html)}`);
      return 0;
    }

    // Auto-submitting form (form_post response mode, or
    // verification_uri_complete which posts xsrf + user_code).
    if (forms.length === 1 && forms[0].inputs.every((i) => i.type === 'hidden')) {
      const [auto] = forms;
      if (auto.action.origin === issuerOrigin) {
        log(`auto-submitting form to ${auto.action.pathname}`);
        if (auto.fields.user_code) submittedUserCode = true;
        method = auto.method;
        url = auto.action;
        form = { ...auto.fields };
        continue;
      }
      if (mode === 'code' && auto.method === 'POST') {
        return deliverCallback(auto.action, 'POST', auto.fields);
      }
    }

    throw new Failure(`unexpected page at ${url.pathname} (HTTP ${res.status}, "${title}"): ${pageText(html)}`);
  }
  throw new Failure(`gave up after ${MAX_STEPS} requests`);
}

try {
  const code = await run();
  process.exit(code);
} catch (err) {
  if (err instanceof Failure) {
    log(`FAILED: ${err.message}`);
    process.exit(err.exitCode);
  }
  log(`FAILED: ${err.stack || err}`);
  process.exit(1);
}
