#!/usr/bin/env node
// Browser end-to-end test runner for ringsfu.
//
// Builds app/client.js (stock mediasoup-client + protoo-client, the mediasoup-demo flow) with
// esbuild, serves it on 127.0.0.1, drives three headless Chromium pages (peers A, B, C) against
// an already running ringsfu server and checks that media really flows between them.
//
// Usage:  node run.mjs               run the scenario (server must be listening)
//         node run.mjs --build-only  only bundle app/client.js into dist/
//         node run.mjs --self-test   no server: check Chromium, fake devices and loopback WebRTC
//         node run.mjs --broadcaster an ffmpeg broadcaster (HTTP API) is watched by a browser peer
//
// Environment:
//   RINGSFU_WS           server base URL (default ws://127.0.0.1:4443)
//   CHROMIUM_PATH        browser binary (default /usr/bin/chromium)
//   RINGSFU_E2E_TIMEOUT  hard limit for the whole run in seconds (default 180)
//   RINGSFU_MEDIA_TIMEOUT deadline of the first media check in seconds (default 60; 10 after a failure)
//   RINGSFU_FORCE_TCP=1  ask the server for TCP-only transports
//   RINGSFU_SIMULCAST=1  send the webcam as 3 simulcast streams (demo default)
//   RINGSFU_DATACHANNEL=0 no data channels (default on: 'chat' and 'bot' DataProducers, checked)
//   RINGSFU_DEBUG=1      verbose mediasoup-client/protoo-client logs in the console log
//   RINGSFU_BROWSER_LOG  console log file (default dist/browser-console.log)
//
// Output: one `PASS name` / `FAIL name: why` line per check, then `N passed, M failed`.

import { writeFile, appendFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { CHROMIUM, CHROMIUM_ARGS, DIST, buildClientBundle, launchBrowser, serveClient } from './lib/browser.mjs';

const SERVER_WS = process.env.RINGSFU_WS || 'ws://127.0.0.1:4443';
const HARD_TIMEOUT_S = Number(process.env.RINGSFU_E2E_TIMEOUT || 180);
const LOG_FILE = process.env.RINGSFU_BROWSER_LOG || path.join(DIST, 'browser-console.log');
const flag = (name) => ['1', 'true', 'yes'].includes(String(process.env[name] || '').toLowerCase());
// Data channels are on unless RINGSFU_DATACHANNEL is 0/false/no (the demo app's default is on).
const DATACHANNEL = !['0', 'false', 'no'].includes(String(process.env.RINGSFU_DATACHANNEL || '1').toLowerCase());


// ---------------------------------------------------------------------------------------------
// Results

let passed = 0;
let failed = 0;
let finished = false; // after the summary line nothing more is reported
// Names of the checks that reported (pass or fail): `requireChecks` fails the run when a check
// every healthy run reaches never reported, so no early return or abort can end in a green run.
const reported = new Set();

function pass(name) {
  if (finished) return;
  passed += 1;
  reported.add(name);
  console.log(`PASS ${name}`);
}

function fail(name, why) {
  if (finished) return;
  failed += 1;
  reported.add(name);
  console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, ' ').trim()}`);
}

/** Runs one check; returns true on success. Never throws. */
async function check(name, fn) {
  try {
    await fn();
    pass(name);
    return true;
  } catch (error) {
    fail(name, error && error.message ? error.message : error);
    return false;
  }
}

class Fatal extends Error {}

/**
 * The checks each mode must reach (passing or failing): the last checks of each phase, so a run
 * that stops early (a Fatal, a `return` after a failed step, a scenario branch skipped because a
 * consumer was never seen) cannot exit 0 with only its first checks passed.
 */
function requiredChecks(mode) {
  if (mode === 'broadcaster') {
    return ['build', 'broadcaster-rest-setup', 'ffmpeg-started', 'consumers-of-broadcaster', 'video-decoded-from-ffmpeg',
      'audio-from-ffmpeg', 'broadcaster-delete', 'peerClosed-broadcaster-at-V'];
  }
  if (mode === 'self') return ['build', 'self-fake-camera', 'self-loopback-candidates', 'self-loopback-video-decoded', 'self-loopback-audio-received'];
  if (mode !== 'e2e') return ['build'];
  const names = ['build', 'connect', 'join-A', 'produce-A', 'join-B', 'produce-B', 'join-C', 'produce-C'];
  for (const [v, s] of [['A', 'B'], ['B', 'A'], ['C', 'A'], ['C', 'B'], ['A', 'C'], ['B', 'C']]) {
    names.push(`consumers-${s}-to-${v}`, `video-flows-${s}-to-${v}`, `audio-flows-${s}-to-${v}`);
  }
  for (const v of ['B', 'C']) {
    names.push(`consumerPaused-A-video-at-${v}`, `video-stops-A-to-${v}`, `audio-unaffected-A-to-${v}`,
      `consumerResumed-A-video-at-${v}`, `video-resumes-A-to-${v}`);
  }
  if (DATACHANNEL) names.push('chat-A-to-B', 'chat-A-to-C', 'bot-answers-everyone', 'dataConsumerClosed-chat-A-at-B');
  names.push('close-C', 'peerClosed-C-at-A', 'peerClosed-C-at-B', 'consumerClosed-C-at-A', 'consumerClosed-C-at-B',
    'video-still-flows-B-to-A', 'audio-still-flows-A-to-B');
  return names;
}

/** Counts one failure per required check that never reported. */
function requireChecks(mode) {
  const missing = requiredChecks(mode).filter((n) => !reported.has(n));
  if (missing.length) fail('required-checks', `never reached: ${missing.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// Build and serve

const buildBundle = () => buildClientBundle();
const startHttpServer = serveClient;

// ---------------------------------------------------------------------------------------------
// Server reachability diagnostics (only to turn a failure into a clear message)

function wsTarget() {
  const url = new URL(SERVER_WS);
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`RINGSFU_WS must be ws:// or wss://, got ${SERVER_WS}`);
  const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
  return { url, host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

function tcpProbe(host, port, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (error) => {
      socket.destroy();
      resolve(error);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`TCP connect timed out after ${timeoutMs} ms`)));
    socket.once('connect', () => done(null));
    socket.once('error', (error) => done(error));
  });
}

// Explains why a browser WebSocket could not open: does a raw protoo upgrade and reports the
// HTTP status or a missing subprotocol echo. Only used after the browser failed.
function wsHandshakeProbe(roomId) {
  const { url, host, port } = wsTarget();
  if (url.protocol === 'wss:') return Promise.resolve('(wss: handshake probe not implemented)');
  return new Promise((resolve) => {
    const req = http.request({
      host,
      port,
      path: `/?roomId=${encodeURIComponent(roomId)}&peerId=probe`,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Protocol': 'protoo',
      },
      timeout: 3000,
    });
    req.on('upgrade', (res, socket) => {
      const proto = res.headers['sec-websocket-protocol'];
      socket.destroy();
      resolve(proto === 'protoo' ? 'raw handshake succeeded (101, protoo)' : `server answered 101 without echoing subprotocol "protoo" (got ${JSON.stringify(proto)})`);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(`server answered HTTP ${res.statusCode} ${res.statusMessage} to the WebSocket upgrade`);
    });
    req.on('timeout', () => { req.destroy(); resolve('no answer to the WebSocket upgrade within 3 s'); });
    req.on('error', (error) => resolve(`upgrade request failed: ${error.message}`));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Browser and pages

let browser = null;
let logChain = Promise.resolve();

function logLine(line) {
  logChain = logChain.then(() => appendFile(LOG_FILE, `${new Date().toISOString()} ${line}\n`)).catch(() => {});
}

/** Opens one peer page; returns a small handle with helpers around window.__rs. */
async function openPeer(origin, { name, roomId, peerId, autojoin = true }) {
  const context = await browser.newContext();
  await context.grantPermissions(['camera', 'microphone'], { origin });
  const page = await context.newPage();
  page.on('console', (msg) => logLine(`[${name}] ${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (error) => logLine(`[${name}] pageerror: ${error.stack || error}`));
  page.on('crash', () => logLine(`[${name}] page crashed`));
  const debug = flag('RINGSFU_DEBUG') ? 'mediasoup-client:*,protoo-client:*' : 'mediasoup-client:WARN*,mediasoup-client:ERROR*,protoo-client:WARN*,protoo-client:ERROR*';
  await page.addInitScript((d) => { try { localStorage.setItem('debug', d); } catch (e) { /* ignore */ } }, debug);
  const q = new URLSearchParams({
    server: SERVER_WS,
    roomId,
    peerId,
    displayName: `peer-${name}`,
    forceTcp: String(flag('RINGSFU_FORCE_TCP')),
    simulcast: String(flag('RINGSFU_SIMULCAST')),
    datachannel: String(DATACHANNEL),
    autojoin: String(autojoin),
  });
  await page.goto(`${origin}/?${q}`, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => !!window.__rs, null, { timeout: 10000 });
  return {
    name,
    peerId,
    context,
    page,
    snapshot: () => page.evaluate(() => window.__rs.snapshot()),
    stats: () => page.evaluate(() => window.__rs.getStats()),
    call: (fn, ...args) => page.evaluate(([f, a]) => window.__rs[f](...a), [fn, args]),
  };
}

/**
 * Polls `probe` (async, returns a value) until `ok(value)` holds or the deadline passes.
 * On timeout throws with `explain(lastValue)`.
 */
async function waitFor(probe, ok, { timeoutMs = 60000, intervalMs = 250, explain = (v) => JSON.stringify(v) } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s: ${explain(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function shortState(s) {
  const parts = [`phase=${s.phase}`];
  if (s.error) parts.push(`error=${s.error}`);
  if (s.connectError) parts.push(`connectError=${s.connectError}`);
  for (const [k, t] of Object.entries(s.transports || {})) parts.push(`${k}=${t.connectionState}`);
  parts.push(`consumers=${(s.consumers || []).map((c) => `${c.kind}@${c.peerId}`).join(',') || 'none'}`);
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Scenario steps

async function waitJoined(peer) {
  const s = await waitFor(peer.snapshot, (x) => x.joined || x.error || x.connectError, {
    timeoutMs: 30000,
    explain: shortState,
  });
  if (s.connectError && !s.wsOpen) throw new Fatal(s.connectError);
  if (!s.joined) throw new Fatal(`join sequence failed: ${shortState(s)}`);
  return s;
}

async function waitProducing(peer) {
  const s = await waitFor(peer.snapshot, (x) => (x.producers.audio && x.producers.video) || x.error, {
    timeoutMs: 30000,
    explain: shortState,
  });
  if (!(s.producers.audio && s.producers.video)) throw new Error(shortState(s));
  return s;
}

/** Waits until `viewer` has live audio+video consumers of `source`'s producers. */
async function waitConsumersOf(viewer, source) {
  const src = await source.snapshot();
  const want = { audio: src.producers.audio.id, video: src.producers.video.id };
  const s = await waitFor(viewer.snapshot, (x) => ['audio', 'video'].every((k) => x.consumers.some((c) => c.peerId === source.peerId && c.kind === k && c.producerId === want[k])), {
    timeoutMs: 30000,
    explain: (x) => `want audio+video consumers of ${source.name} (producers ${want.audio}, ${want.video}); ${shortState(x)}`,
  });
  return {
    audio: s.consumers.find((c) => c.peerId === source.peerId && c.kind === 'audio'),
    video: s.consumers.find((c) => c.peerId === source.peerId && c.kind === 'video'),
  };
}

async function consumerStat(viewer, consumerId) {
  const rows = await viewer.stats();
  const row = rows.find((r) => r.id === consumerId);
  if (!row) throw new Error(`consumer ${consumerId} no longer exists on ${viewer.name}`);
  return row;
}

// `${consumerId}/${field}` of every counter seen growing, so a "stopped" check cannot pass on a
// stream that never flowed.
const flowing = new Set();

/** Waits until `field` of the consumer's inbound-rtp grows by at least `by` from now. */
async function waitGrowth(viewer, consumerId, field, by, timeoutMs = 60000) {
  const base = (await consumerStat(viewer, consumerId))[field];
  try {
    await waitFor(() => consumerStat(viewer, consumerId), (r) => r[field] >= base + by, {
      timeoutMs,
      intervalMs: 500,
      explain: (r) => `${field} went ${base} -> ${r[field]} (packetsReceived=${r.packetsReceived}, bytesReceived=${r.bytesReceived}, inbound-rtp entries=${r.inboundRtp})`,
    });
  } catch (error) {
    const st = await viewer.snapshot().catch(() => null);
    const tr = st && st.transports.recv ? st.transports.recv.connectionState : 'unknown';
    throw new Error(`${error.message}; ${viewer.name} recv transport connectionState=${tr}`);
  }
  flowing.add(`${consumerId}/${field}`);
}

/** Waits until `field` (seen growing before) stays unchanged for `stableMs`. */
async function waitStalled(viewer, consumerId, field, stableMs = 4000, timeoutMs = 20000) {
  if (!flowing.has(`${consumerId}/${field}`)) throw new Error(`${field} was never seen growing, so stopping proves nothing`);
  const deadline = Date.now() + timeoutMs;
  let value = (await consumerStat(viewer, consumerId))[field];
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = (await consumerStat(viewer, consumerId))[field];
    if (now !== value) {
      value = now;
      since = Date.now();
    } else if (Date.now() - since >= stableMs) {
      return;
    }
  }
  throw new Error(`${field} kept growing (now ${value}) for ${Math.round(timeoutMs / 1000)} s`);
}

async function waitNotification(peer, method, pred, what) {
  return waitFor(peer.snapshot, (x) => x.notifications.some((n) => n.method === method && pred(n.data)), {
    timeoutMs: 20000,
    explain: (x) => `no ${method} for ${what}; got ${x.notifications.filter((n) => !/Score|activeSpeaker|downlinkBwe/.test(n.method)).map((n) => n.method).join(',') || 'nothing relevant'}`,
  });
}

/**
 * Runs checks concurrently (they wait on independent streams) and reports them in list order.
 * `list` holds [name, fn]; returns one boolean per check.
 */
async function checkAll(list) {
  const errors = await Promise.all(list.map(([, fn]) => Promise.resolve().then(fn).then(() => null, (e) => e || new Error('failed'))));
  return list.map(([name], i) => {
    if (errors[i]) {
      fail(name, errors[i].message || errors[i]);
      return false;
    }
    pass(name);
    return true;
  });
}

// Media deadline: generous until a media check has failed once, then short, so that a server
// that never delivers media still finishes well inside the hard timeout with every check listed.
const MEDIA_TIMEOUT_MS = Number(process.env.RINGSFU_MEDIA_TIMEOUT || 60) * 1000;
let mediaFailed = false;

/** Like checkAll; each fn gets its deadline in ms. */
async function mediaBatch(list) {
  const t = mediaFailed ? Math.min(MEDIA_TIMEOUT_MS, 10000) : MEDIA_TIMEOUT_MS;
  const oks = await checkAll(list.map(([name, fn]) => [name, () => fn(t)]));
  if (oks.includes(false)) mediaFailed = true;
  return oks;
}

function flowChecks(pairs, seen) {
  const list = [];
  for (const [v, s] of pairs) {
    const c = seen[`${v.name}<-${s.name}`];
    if (!c) continue;
    list.push([`video-flows-${s.name}-to-${v.name}`, (t) => waitGrowth(v, c.video.id, 'framesDecoded', 10, t)]);
    list.push([`audio-flows-${s.name}-to-${v.name}`, (t) => waitGrowth(v, c.audio.id, 'packetsReceived', 10, t)]);
  }
  return list;
}

async function scenario(origin, peers) {
  const roomId = `e2e-${Date.now().toString(36)}-${crypto.randomBytes(2).toString('hex')}`;
  const ids = { A: 'peera', B: 'peerb', C: 'peerc' };
  const suffix = crypto.randomBytes(3).toString('hex');

  // A joins first, then B (so B's join response must list A).
  peers.A = await openPeer(origin, { name: 'A', roomId, peerId: `${ids.A}${suffix}` });
  const { A } = peers;
  // Connection (the first failure here explains itself and stops the run).
  try {
    await waitFor(A.snapshot, (x) => x.wsOpen || x.connectError, { timeoutMs: 15000, explain: shortState });
    const s = await A.snapshot();
    if (!s.wsOpen) throw new Fatal(`${s.connectError}; ${await wsHandshakeProbe(roomId)}`);
    pass('connect');
  } catch (error) {
    fail('connect', error.message);
    throw new Fatal('stopping: no protoo connection');
  }
  const joinAndProduce = async (p) => {
    if (!(await check(`join-${p.name}`, () => waitJoined(p)))) throw new Fatal(`stopping: ${p.name} could not join`);
    if (!(await check(`produce-${p.name}`, () => waitProducing(p)))) throw new Fatal(`stopping: ${p.name} could not produce`);
  };
  await joinAndProduce(A);
  peers.B = await openPeer(origin, { name: 'B', roomId, peerId: `${ids.B}${suffix}` });
  const { B } = peers;
  await joinAndProduce(B);
  await check('join-response-B-lists-A', async () => {
    const b = await B.snapshot();
    if (!b.peers[A.peerId]) throw new Error(`B's peer list lacks A: ${JSON.stringify(b.peers)}`);
  });
  await check('newPeer-B-to-A', () => waitNotification(A, 'newPeer', (d) => d.id === B.peerId, B.peerId));

  const seen = {}; // `${viewer}<-${source}` → {audio, video} consumer descriptions
  const consumeChecks = (pairs) => checkAll(pairs.map(([v, src]) => [`consumers-${src.name}-to-${v.name}`, async () => {
    seen[`${v.name}<-${src.name}`] = await waitConsumersOf(v, src);
  }]));
  await consumeChecks([[A, B], [B, A]]);
  await mediaBatch(flowChecks([[A, B], [B, A]], seen));

  // C joins: everybody sees everybody.
  peers.C = await openPeer(origin, { name: 'C', roomId, peerId: `${ids.C}${suffix}` });
  const { C } = peers;
  await joinAndProduce(C);
  await check('join-response-C-lists-A-B', async () => {
    const c = await C.snapshot();
    const missing = [A, B].filter((p) => !c.peers[p.peerId]).map((p) => p.name);
    if (missing.length) throw new Error(`C's peer list lacks ${missing.join(',')}: ${JSON.stringify(c.peers)}`);
  });
  await checkAll([A, B].map((v) => [`newPeer-C-to-${v.name}`, () => waitNotification(v, 'newPeer', (d) => d.id === C.peerId, C.peerId)]));
  const withC = [[C, A], [C, B], [A, C], [B, C]];
  await consumeChecks(withC);
  await mediaBatch(flowChecks(withC, seen));

  if (DATACHANNEL) await dataChannelChecks(A, B, C);

  // A pauses its webcam: B and C get consumerPaused, A's video stops there, A's audio goes on.
  const viewersOfA = [[B, seen['B<-A']], [C, seen['C<-A']]].filter(([, c]) => c);
  if (await check('pauseProducer-A-video', () => A.call('pauseProducer', 'video'))) {
    await checkAll(viewersOfA.map(([v, c]) => [`consumerPaused-A-video-at-${v.name}`,
      () => waitNotification(v, 'consumerPaused', (d) => d.consumerId === c.video.id, `consumer ${c.video.id}`)]));
    await mediaBatch([
      ...viewersOfA.map(([v, c]) => [`video-stops-A-to-${v.name}`, () => waitStalled(v, c.video.id, 'framesDecoded')]),
      ...viewersOfA.map(([v, c]) => [`audio-unaffected-A-to-${v.name}`, (t) => waitGrowth(v, c.audio.id, 'packetsReceived', 10, t)]),
    ]);
    if (await check('resumeProducer-A-video', () => A.call('resumeProducer', 'video'))) {
      await checkAll(viewersOfA.map(([v, c]) => [`consumerResumed-A-video-at-${v.name}`,
        () => waitNotification(v, 'consumerResumed', (d) => d.consumerId === c.video.id, `consumer ${c.video.id}`)]));
      await mediaBatch(viewersOfA.map(([v, c]) => [`video-resumes-A-to-${v.name}`, (t) => waitGrowth(v, c.video.id, 'framesDecoded', 10, t)]));
    }
  }

  // C leaves: A and B get peerClosed and consumerClosed for every consumer of C.
  await check('close-C', () => C.call('close'));
  const leaveChecks = [];
  for (const v of [A, B]) {
    leaveChecks.push([`peerClosed-C-at-${v.name}`, () => waitNotification(v, 'peerClosed', (d) => d.peerId === C.peerId, C.peerId)]);
    if (!seen[`${v.name}<-C`]) continue;
    leaveChecks.push([`consumerClosed-C-at-${v.name}`, () => waitFor(v.snapshot, (x) => !x.consumers.some((k) => k.peerId === C.peerId), {
      timeoutMs: 20000,
      explain: (x) => `still open: ${x.consumers.filter((k) => k.peerId === C.peerId).map((k) => `${k.kind}:${k.id}`).join(',')}; consumerClosed seen for ${x.notifications.filter((n) => n.method === 'consumerClosed').map((n) => n.data.consumerId).join(',') || 'none'}`,
    })]);
  }
  await checkAll(leaveChecks);
  // A and B keep receiving each other after C left.
  await mediaBatch(flowChecks([[A, B], [B, A]], seen).map(([name, fn]) => [name.replace('-flows-', '-still-flows-'), fn]));
}

/** A's data consumer entry at `viewer` for label `label` from peer `from` (null: the bot). */
function dataConsumerOf(snap, label, from) {
  return Object.values(snap.dataConsumers).find((d) => d.label === label && (d.peerId ?? null) === from);
}

function dataState(x) {
  return `dataConsumers=${Object.values(x.dataConsumers).map((d) => `${d.label}@${d.peerId}#${d.streamId}[${d.messages.length}]`).join(',') || 'none'} dataProducers=${JSON.stringify(x.dataProducers)} ${shortState(x)}`;
}

/** Waits until `peer` has a message matching `pred` on its `label` data consumer from `from`. */
function waitDataMessage(peer, label, from, pred, what) {
  return waitFor(peer.snapshot, (x) => {
    const d = dataConsumerOf(x, label, from);
    return d && d.messages.some(pred);
  }, {
    timeoutMs: 20000,
    explain: (x) => {
      const d = dataConsumerOf(x, label, from);
      return `no ${what} on ${label} from ${from}; messages: ${d ? JSON.stringify(d.messages.slice(-5)) : '(no such data consumer)'}; ${dataState(x)}`;
    },
  });
}

// Data channels (protoo.md §6): chat fan-out, the room bot, a large binary message, and
// dataConsumerClosed when the browser closes its chat DataProducer.
async function dataChannelChecks(A, B, C) {
  const all = [A, B, C];
  const ok = await checkAll(all.map((p) => [`dataProducers-chat-bot-${p.name}`, () => waitFor(p.snapshot, (x) => x.dataProducers.chat && x.dataProducers.bot, {
    timeoutMs: 30000,
    explain: dataState,
  })]));
  if (ok.includes(false)) return;
  await checkAll([
    ...all.map((v) => [`newDataConsumer-bot-at-${v.name}`, () => waitFor(v.snapshot, (x) => dataConsumerOf(x, 'bot', null), { timeoutMs: 20000, explain: dataState })]),
    ...all.flatMap((v) => all.filter((s) => s !== v).map((s) => [`newDataConsumer-chat-${s.name}-at-${v.name}`,
      () => waitFor(v.snapshot, (x) => dataConsumerOf(x, 'chat', s.peerId), { timeoutMs: 20000, explain: dataState })])),
  ]);

  const nonce = crypto.randomBytes(4).toString('hex');
  const chatText = `hello from A ${nonce}`;
  // The browser channels open asynchronously after newDataConsumer: resend until seen.
  const resend = (fn, arg, stop) => {
    let done = false;
    const loop = (async () => {
      while (!done) {
        await A.call(fn, arg).catch(() => {});
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return stop.finally(() => { done = true; return loop; });
  };
  await checkAll([B, C].map((v) => [`chat-A-to-${v.name}`,
    () => resend('sendChat', chatText, waitDataMessage(v, 'chat', A.peerId, (m) => m === chatText, JSON.stringify(chatText)))]));

  const botText = `hi bot ${nonce}`;
  const answer = `peer-A said me: "${botText}"`;
  await checkAll([[`bot-answers-everyone`, () => resend('sendBot', botText, Promise.all(all.map((v) => waitDataMessage(v, 'bot', null, (m) => m === answer, JSON.stringify(answer)))))]]);

  await check('chat-binary-200KB-A-to-B', async () => {
    const sent = await A.call('sendChatBinary', 200 * 1024);
    const want = `<binary ${sent.size} ${sent.hash}>`;
    await waitDataMessage(B, 'chat', A.peerId, (m) => m === want, want).catch(async (e) => {
      const got = dataConsumerOf(await B.snapshot(), 'chat', A.peerId);
      throw new Error(`${e.message}; binary seen: ${JSON.stringify((got ? got.messages : []).filter((m) => m.startsWith('<binary')))}`);
    });
  });

  await check('getDataProducerStats-A-chat', async () => {
    const a = await A.snapshot();
    const stats = await A.call('request', 'getDataProducerStats', { dataProducerId: a.dataProducers.chat });
    if (!Array.isArray(stats) || stats[0].type !== 'data-producer' || stats[0].label !== 'chat' || !(stats[0].messagesReceived >= 2) || !(stats[0].bytesReceived >= 200 * 1024)) {
      throw new Error(`unexpected stats ${JSON.stringify(stats)}`);
    }
  });
  // Chrome answers our sender reports with receiver reports (LSR/DLSR): the consumer's stats then
  // carry the round-trip time computed from them.
  await check('getConsumerStats-B-video-of-A-has-rtt', async () => {
    const c = (await B.snapshot()).consumers.find((k) => k.peerId === A.peerId && k.kind === 'video');
    if (!c) throw new Error('no video consumer of A at B');
    const stats = await waitFor(() => B.call('request', 'getConsumerStats', { consumerId: c.id }),
      (st) => Array.isArray(st) && st[0] && st[0].type === 'outbound-rtp' && typeof st[0].roundTripTime === 'number', {
        timeoutMs: 30000,
        intervalMs: 500,
        explain: (st) => `no roundTripTime yet: ${JSON.stringify(st && st[0])}`,
      });
    const rtt = stats[0].roundTripTime;
    if (!(rtt >= 0 && rtt < 1000)) throw new Error(`implausible loopback RTT ${rtt} ms`);
  });
  await check('getDataConsumerStats-B-chat-of-A', async () => {
    const d = dataConsumerOf(await B.snapshot(), 'chat', A.peerId);
    const stats = await B.call('request', 'getDataConsumerStats', { dataConsumerId: d.id });
    if (!Array.isArray(stats) || stats[0].type !== 'data-consumer' || stats[0].label !== 'chat' || !(stats[0].bytesSent >= 200 * 1024)) {
      throw new Error(`unexpected stats ${JSON.stringify(stats)}`);
    }
  });

  // A closes its chat DataProducer locally: the browser resets the SCTP stream, the engine
  // closes the DataProducer, B and C get dataConsumerClosed for their chat consumer of A.
  const chatOfA = {};
  for (const v of [B, C]) {
    const d = dataConsumerOf(await v.snapshot(), 'chat', A.peerId);
    if (d) chatOfA[v.name] = d.id;
  }
  if (await check('close-chat-A', () => A.call('closeChat'))) {
    await checkAll([B, C].map((v) => [`dataConsumerClosed-chat-A-at-${v.name}`,
      () => waitNotification(v, 'dataConsumerClosed', (d) => d.dataConsumerId === chatOfA[v.name], `chat data consumer ${chatOfA[v.name]} of A`)]));
  }
}

/**
 * ffmpeg publishes through the HTTP broadcaster API (two comedia PlainTransports, opus PT 100 /
 * SSRC 1111, VP8 PT 101 / SSRC 2222); a browser peer in the room must decode the video and receive
 * the audio; deleting the broadcaster gives the peer peerClosed.
 */
async function broadcasterScenario(origin, peers) {
  const base = SERVER_WS.replace(/^ws/, 'http');
  const roomId = `bcast-${Date.now().toString(36)}-${crypto.randomBytes(2).toString('hex')}`;
  const bid = `ffmpeg${crypto.randomBytes(3).toString('hex')}`;
  const api = async (method, pathPart, body) => {
    const res = await fetch(`${base}/rooms/${roomId}${pathPart}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${pathPart}: ${res.status} ${text}`);
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (e) {
      return text; // DELETE answers plain text, as in mediasoup-demo
    }
  };
  let ffmpeg = null;
  try {
    let a;
    let v;
    const setup = await check('broadcaster-rest-setup', async () => {
      await api('GET', '');
      await api('POST', '/broadcasters', { id: bid, displayName: 'Broadcaster', device: { name: 'FFmpeg' } });
      a = await api('POST', `/broadcasters/${bid}/transports`, { type: 'plain', comedia: true, rtcpMux: false });
      v = await api('POST', `/broadcasters/${bid}/transports`, { type: 'plain', comedia: true, rtcpMux: false });
      await api('POST', `/broadcasters/${bid}/transports/${a.id}/producers`, {
        kind: 'audio',
        rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2, parameters: { 'sprop-stereo': 1 } }], encodings: [{ ssrc: 1111 }] },
      });
      await api('POST', `/broadcasters/${bid}/transports/${v.id}/producers`, {
        kind: 'video',
        rtpParameters: { codecs: [{ mimeType: 'video/vp8', payloadType: 101, clockRate: 90000 }], encodings: [{ ssrc: 2222 }] },
      });
    });
    if (!setup) return;
    for (const t of [a, v]) {
      if (!['127.0.0.1', '::1', 'localhost'].includes(t.ip)) throw new Fatal(`refusing to send RTP to non-loopback ${t.ip}`);
    }
    // Bounded: -t 60 and killed in `finally`.
    ffmpeg = spawn('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-nostdin', '-re',
      '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-map', '1:a:0', '-c:a', 'libopus', '-b:a', '128k', '-ac', '2', '-ar', '48000',
      '-map', '0:v:0', '-pix_fmt', 'yuv420p', '-c:v', 'libvpx', '-b:v', '1000k',
      '-deadline', 'realtime', '-cpu-used', '4', '-g', '30', '-t', '60',
      '-f', 'tee',
      `[select=a:f=rtp:ssrc=1111:payload_type=100]rtp://${a.ip}:${a.port}?rtcpport=${a.rtcpPort}&pkt_size=1200|` +
        `[select=v:f=rtp:ssrc=2222:payload_type=101]rtp://${v.ip}:${v.port}?rtcpport=${v.rtcpPort}&pkt_size=1200`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    ffmpeg.stderr.on('data', (d) => logLine(`[ffmpeg] ${String(d).trim()}`));
    const started = await check('ffmpeg-started', () => new Promise((resolve, reject) => {
      ffmpeg.once('error', (e) => reject(new Error(`cannot run ffmpeg: ${e.message}`)));
      ffmpeg.once('spawn', resolve);
    }));
    if (!started) return;

    peers.V = await openPeer(origin, { name: 'V', roomId, peerId: `viewer${crypto.randomBytes(3).toString('hex')}` });
    const { V } = peers;
    await waitJoined(V);
    let cons;
    const got = await check('consumers-of-broadcaster', async () => {
      const s = await waitFor(V.snapshot, (x) => ['audio', 'video'].every((k) => x.consumers.some((c) => c.peerId === bid && c.kind === k)), {
        timeoutMs: 30000,
        explain: (x) => `want audio+video consumers of ${bid}; ${shortState(x)}`,
      });
      cons = {
        audio: s.consumers.find((c) => c.peerId === bid && c.kind === 'audio'),
        video: s.consumers.find((c) => c.peerId === bid && c.kind === 'video'),
      };
    });
    if (!got) return;
    await mediaBatch([
      ['video-decoded-from-ffmpeg', (t) => waitGrowth(V, cons.video.id, 'framesDecoded', 20, t)],
      ['audio-from-ffmpeg', (t) => waitGrowth(V, cons.audio.id, 'packetsReceived', 20, t)],
    ]);
    await check('broadcaster-delete', () => api('DELETE', `/broadcasters/${bid}`));
    await checkAll([
      ['peerClosed-broadcaster-at-V', () => waitNotification(V, 'peerClosed', (d) => d.peerId === bid, bid)],
    ]);
  } finally {
    if (ffmpeg && ffmpeg.exitCode === null) ffmpeg.kill('SIGKILL');
  }
}

async function selfTest(origin, peers) {
  const peer = await openPeer(origin, { name: 'self', roomId: 'none', peerId: 'self', autojoin: false });
  peers.self = peer;
  const r = await peer.call('selfTest');
  logLine(`[self] selfTest: ${JSON.stringify(r)}`);
  console.log(`chromium ${browser.version()}`);
  console.log(`fake camera: ${r.videoLabel} ${JSON.stringify(r.videoSettings)}`);
  console.log(`fake microphone: ${r.audioLabel}`);
  console.log(`loopback candidates: ${r.candidates.join(' | ')}`);
  await check('self-fake-camera', async () => {
    if (!r.videoSettings || !r.videoSettings.width) throw new Error(`no video track settings: ${JSON.stringify(r.videoSettings)}`);
  });
  await check('self-loopback-candidates', async () => {
    if (!r.candidates.some((c) => / 127\.0\.0\.1 /.test(c))) throw new Error(`no 127.0.0.1 host candidate among ${r.candidates.length}`);
  });
  await check('self-loopback-video-decoded', async () => {
    if (r.framesDecoded <= 10) throw new Error(`framesDecoded=${r.framesDecoded}, ice=${r.iceState}`);
  });
  await check('self-loopback-audio-received', async () => {
    if (r.audioPackets <= 10) throw new Error(`packetsReceived=${r.audioPackets}, ice=${r.iceState}`);
  });
}

// ---------------------------------------------------------------------------------------------
// Main

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
}

async function finish(code) {
  if (finished) return;
  finished = true;
  console.log(`${passed} passed, ${failed} failed`);
  await closeBrowser();
  await logChain;
  process.exit(code);
}

async function main() {
  const mode = process.argv.includes('--self-test') ? 'self' : process.argv.includes('--build-only') ? 'build' : process.argv.includes('--broadcaster') ? 'broadcaster' : 'e2e';
  const hard = setTimeout(() => {
    fail('timeout', `whole run exceeded ${HARD_TIMEOUT_S} s`);
    finish(1);
  }, HARD_TIMEOUT_S * 1000);

  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => { fail('interrupted', sig); finish(1); });
  }

  if (!(await check('build', buildBundle))) return finish(1);
  if (mode === 'build') {
    clearTimeout(hard);
    return finish(0);
  }
  await writeFile(LOG_FILE, '');

  if (mode === 'e2e' || mode === 'broadcaster') {
    // Fail fast and clearly when nothing listens, before starting a browser.
    const { host, port } = wsTarget();
    const error = await tcpProbe(host, port);
    if (error) {
      fail('connect', `no server reachable at ${SERVER_WS} (${error.code || error.message}); start ringsfu first or set RINGSFU_WS`);
      return finish(1);
    }
  }

  const { server, origin } = await startHttpServer();
  const peers = {};
  try {
    try {
      browser = await launchBrowser();
    } catch (error) {
      fail('launch-browser', `${CHROMIUM}: ${error.message.split('\n')[0]}`);
      throw new Fatal('no browser');
    }
    logLine(`chromium ${browser.version()} args ${CHROMIUM_ARGS.join(' ')}`);
    await (mode === 'self' ? selfTest(origin, peers) : mode === 'broadcaster' ? broadcasterScenario(origin, peers) : scenario(origin, peers));
  } catch (error) {
    // An abort is a failure even when the step that caused it already failed a check of its own
    // (a Fatal thrown outside any check, e.g. by waitJoined, reported nothing before).
    if (!(error instanceof Fatal)) fail('runner', error.stack || error.message);
    else fail('aborted', error.message);
  } finally {
    for (const [name, p] of Object.entries(peers)) {
      try {
        logLine(`[${name}] final state: ${JSON.stringify(await p.snapshot())}`);
      } catch (e) { /* page gone */ }
    }
    server.close();
    clearTimeout(hard);
  }
  requireChecks(mode);
  console.log(`browser console log: ${LOG_FILE}`);
  return finish(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((error) => {
  fail('runner', error.stack || error);
  finish(1);
});
