// Headless-Chromium end-to-end test of the 1:1 call pages ringsfu serves (README, "1:1 calls"):
// the seed 003 flow over socket.io (/calls/socketio.html, the vendored socket.io-client) and the
// seed 004 flow over the plain WebSocket /call (/calls/ws.html).
//
//   RINGSFU_HTTP=http://127.0.0.1:PORT node calls.mjs socketio|ws [--relay]
//
// Two pages join a room and call each other (offer/answer/candidates through the signaling
// script); each must decode the other's video. With --relay the pages use
// iceTransportPolicy 'relay' (ICE servers from the signaling script: ringsfu's TURN), and the
// selected candidate pair of both must be relay/relay. A third page must get `full`; the
// second leaves: `leaved` for it and `bye` for the first.
import { launchBrowser } from './lib/browser.mjs';

const BASE = process.env.RINGSFU_HTTP || 'http://127.0.0.1:4443';
const flow = process.argv[2] || 'socketio';
const relay = process.argv.includes('--relay');
const DEADLINE_MS = Number(process.env.RINGSFU_CALLS_DEADLINE_MS || 60000);
let failures = 0;
function ok(name, cond, detail = '') {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${flow}${relay ? '+relay' : ''}: ${name}${detail ? ' — ' + detail : ''}`);
  if (!cond) failures++;
}

async function waitUntil(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: DEADLINE_MS, polling: 100 });
    return true;
  } catch (e) {
    const state = await page.evaluate(() => JSON.stringify(window.call)).catch(() => '?');
    console.log(`timeout waiting for ${what}; page state ${state}`);
    return false;
  }
}

const hasEvent = (ev) => (name) => window.call.events.some((e) => e[0] === name);

/** Selected pair's candidate types and decoded video frames, from getStats. */
async function media(page) {
  return page.evaluate(async () => {
    const pc = window.call.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pair = null, frames = 0;
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
    });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    const local = pair && byId.get(pair.localCandidateId);
    const remote = pair && byId.get(pair.remoteCandidateId);
    return { local: local && local.candidateType, remote: remote && remote.candidateType,
      localAddr: local && `${local.address}:${local.port}`, frames };
  });
}

const browser = await launchBrowser();
const hard = setTimeout(() => { console.log('FAIL hard timeout'); process.exit(1); }, DEADLINE_MS * 4);
try {
  const room = `${flow}-${Date.now()}`;
  const url = (user) => flow === 'socketio'
    ? `${BASE}/calls/socketio.html?room=${room}&auto=1${relay ? '&relay=1' : ''}`
    : `${BASE}/calls/ws.html?room=${room}&user=${user}&auto=1${relay ? '&relay=1' : ''}`;
  const open = async (user) => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.log(`[${user}] ${m.text()}`); });
    await page.goto(url(user));
    return page;
  };
  const a = await open('alice');
  ok('first joiner gets joined', await waitUntil(a, hasEvent('joined'), 'joined', 'joined (a)'));
  const b = await open('bob');
  ok('second joiner gets joined', await waitUntil(b, hasEvent('joined'), 'joined', 'joined (b)'));
  ok('first gets otherjoin', await waitUntil(a, hasEvent('otherjoin'), 'otherjoin', 'otherjoin (a)'));

  // Media both ways: each decodes the other's video (frames keep coming).
  for (const [n, p] of [['a', a], ['b', b]]) {
    let decoded = false;
    for (const end = Date.now() + DEADLINE_MS; Date.now() < end && !decoded;) {
      const m = await media(p);
      decoded = !!m && m.frames > 30;
      if (!decoded) await new Promise((r) => setTimeout(r, 200));
    }
    const m = await media(p);
    ok(`${n} decodes the other's video`, decoded, JSON.stringify(m));
    if (relay) ok(`${n}'s selected candidate pair is relay`, m && m.local === 'relay' && m.remote === 'relay', JSON.stringify(m));
  }

  const c = await open('carol');
  ok('third joiner gets full', await waitUntil(c, () => window.call.state === 'full', null, 'full (c)'));

  await b.evaluate(() => window.leave());
  ok('leaver gets leaved', await waitUntil(b, () => window.call.state === 'leaved' || window.call.events.some((e) => e[0] === 'leaved'), null, 'leaved (b)'));
  ok('the other gets bye', await waitUntil(a, hasEvent('bye'), 'bye', 'bye (a)'));
  const errs = [];
  for (const p of [a, b]) errs.push(...await p.evaluate(() => window.call.errors));
  ok('no page errors', errs.length === 0, errs.join('; '));
} catch (e) {
  ok('run', false, e.stack);
} finally {
  clearTimeout(hard);
  await browser.close();
}
process.exit(failures ? 1 : 0);
