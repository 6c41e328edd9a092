#!/usr/bin/env node
// WHIP/WHEP and the demo page at `/`, against an already running ringsfu server.
//
//   node whip.mjs            all checks: HTTP statuses, WHIP/WHEP next to mediasoup-client, then the
//                            demo page in two browser contexts
//
// Interop (issue 14, "Done means" 1), room whip-interop-*: a mediasoup-client 3.24 peer M (app/client.js,
// protoo + demo.lua, no data channels, so it sends no sctpCapabilities as the stock demo app does with
// 3.24) joins and publishes; a plain RTCPeerConnection (no library) publishes camera + mic through
// WHIP; M must get newPeer + newConsumer for it, decode its video (framesDecoded grows, frame width
// > 0) and receive its audio (packets grow, totalAudioEnergy grows); a second Chromium watches M
// through WHEP (POST /whep/:room/:M) with a plain recvonly RTCPeerConnection and must decode M's video
// and receive its audio the same way; DELETE of the WHIP session gives M peerClosed.
//
// Environment: RINGSFU_HTTP (default http://127.0.0.1:4443), RINGSFU_WHIP_TOKEN (the token the
// server was started with, if any), CHROMIUM_PATH, WHIP_OUT (output folder, default dist/whip).
// RINGSFU_WS (protoo URL for M; default: RINGSFU_HTTP with ws://).
// Output: `PASS name` / `FAIL name: why` lines, then `N passed, M failed`; exit 1 on a failure, and
// a run that never reached one of REQUIRED's checks fails (`required checks`).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import { buildClientBundle, launchBrowser, serveClient } from './lib/browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = process.env.RINGSFU_HTTP || 'http://127.0.0.1:4443';
const TOKEN = process.env.RINGSFU_WHIP_TOKEN || '';
const OUT = process.env.WHIP_OUT || path.join(HERE, 'dist', 'whip');
const WS = process.env.RINGSFU_WS || BASE.replace(/^http/, 'ws');

let passed = 0, failed = 0;
const reported = new Set();
function check(name, ok, why) {
  reported.add(name);
  if (ok) { passed++; console.log(`PASS ${name}`); } else { failed++; console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, ' ')}`); }
}
// Checks every healthy run reaches (the last of each phase): an early abort cannot pass.
const REQUIRED = [
  'malformed SDP → 400 naming the line', 'no usable codec → 406 with the reason', 'PATCH unknown session → 404',
  'interop: WHIP POST from a plain RTCPeerConnection → 201', 'interop: mediasoup-client peer gets newPeer for the WHIP publisher',
  'interop: mediasoup-client peer decodes the WHIP video', 'interop: mediasoup-client peer receives the WHIP audio',
  'interop: WHEP viewer (second Chromium) decodes the mediasoup-client peer\'s video',
  'interop: WHEP viewer (second Chromium) receives the mediasoup-client peer\'s audio',
  'interop: mediasoup-client peer decodes the simulcast WHIP video at its top layer (1280 wide)',
  'interop: the demo page in that room plays the mediasoup-client peer and the WHIP publisher',
  'interop: WHEP viewer of the simulcast WHIP publisher decodes its top layer (1280 wide)',
  'interop: DELETE WHIP session → 200, mediasoup-client peer gets peerClosed',
  'demo page: alice decodes bob\'s video within 10 s', 'demo page: bob decodes alice\'s video within 10 s',
  'demo page shows resolution and bitrate',
];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Polls `probe` until `ok(value)` or `ms` passed; returns [ok, lastValue]. */
async function poll(probe, ok, ms) {
  const end = Date.now() + ms;
  let v;
  for (;;) {
    v = await probe().catch((e) => ({ error: String(e) }));
    if (ok(v)) return [true, v];
    if (Date.now() > end) return [false, v];
    await sleep(300);
  }
}
const auth = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};

async function post(url, body, headers = {}) {
  const res = await fetch(BASE + url, { method: 'POST', headers: { 'Content-Type': 'application/sdp', ...auth, ...headers }, body });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function httpChecks() {
  const room = 'whip-http-' + Date.now();
  let r = await post(`/whip/${room}`, 'this is not sdp');
  check('malformed SDP → 400 naming the line', r.status === 400 && /line 1/.test(r.text) && /this is not sdp/.test(r.text), `${r.status} ${r.text}`);
  const noCodec = [
    'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=mid:0', 'a=sendonly', 'a=rtcp-mux',
    'a=ice-ufrag:abcd', 'a=ice-pwd:0123456789012345678901',
    'a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08',
    'a=setup:actpass', 'a=rtpmap:96 AV2/90000', 'a=ssrc:1 cname:x', '',
  ].join('\r\n');
  r = await post(`/whip/${room}`, noCodec);
  check('no usable codec → 406 with the reason', r.status === 406 && /no codec in common/.test(r.text) && /AV2/.test(r.text), `${r.status} ${r.text}`);
  r = await post(`/whip/${room}`, noCodec, { 'Content-Type': 'text/plain' });
  check('wrong content type → 415', r.status === 415, `${r.status} ${r.text}`);
  let res = await fetch(`${BASE}/whip/${room}/whip-nosuch`, { method: 'DELETE', headers: auth });
  check('DELETE unknown session → 404', res.status === 404, res.status);
  res = await fetch(`${BASE}/whip/${room}/whip-nosuch`, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...auth }, body: 'a=end-of-candidates\r\n' });
  check('PATCH unknown session → 404', res.status === 404, res.status);
  res = await fetch(`${BASE}/whip/${room}`, { method: 'OPTIONS' });
  check('OPTIONS → 204', res.status === 204, res.status);
  if (TOKEN) {
    res = await fetch(`${BASE}/whip/${room}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: noCodec });
    check('missing token → 401', res.status === 401 && /Bearer/.test(res.headers.get('www-authenticate') || ''), res.status);
    res = await fetch(`${BASE}/whip/${room}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer wrong' }, body: noCodec });
    check('wrong token → 401', res.status === 401, res.status);
  }
}

// In the page: a plain RTCPeerConnection (no library) doing one WHIP/WHEP POST. `send`: publish
// the fake camera + microphone (sendonly); else receive one audio and one video (recvonly).
// `simulcast`: the camera at 1280x720 as three rid encodings (a=simulcast / a=rid, as OBS and browsers send).
async function plainSession({ url, token, send, simulcast = false }) {
  const pc = new RTCPeerConnection();
  if (send) {
    const video = simulcast ? { width: 1280, height: 720 } : { width: 640, height: 480 };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    for (const track of stream.getTracks()) {
      const init = { direction: 'sendonly', streams: [stream] };
      if (simulcast && track.kind === 'video') {
        init.sendEncodings = [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
          { rid: 'f', maxBitrate: 1500000 },
        ];
      }
      pc.addTransceiver(track, init);
    }
  } else {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  await pc.setLocalDescription(await pc.createOffer());
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  const text = await res.text();
  if (res.status !== 201) return { status: res.status, text };
  await pc.setRemoteDescription({ type: 'answer', sdp: text });
  window.__pc = pc;
  // Play what arrives (Chrome computes totalAudioEnergy only for audio that is played out).
  for (const t of pc.getTransceivers()) {
    if (send) break;
    const el = document.createElement(t.receiver.track.kind);
    el.autoplay = true;
    el.muted = false;
    el.srcObject = new MediaStream([t.receiver.track]);
    document.body.appendChild(el);
    el.play().catch(() => {});
  }
  return { status: res.status, location: res.headers.get('location'), etag: res.headers.get('etag') };
}

// In the page: inbound-rtp totals of window.__pc per kind.
async function plainStats() {
  const out = { connection: window.__pc.connectionState, audio: { packets: 0, energy: 0 }, video: { frames: 0, width: 0, height: 0 } };
  (await window.__pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'audio') { out.audio.packets += s.packetsReceived || 0; out.audio.energy += s.totalAudioEnergy || 0; }
    if (s.kind === 'video') { out.video.frames += s.framesDecoded || 0; out.video.width = s.frameWidth || 0; out.video.height = s.frameHeight || 0; }
  });
  return out;
}

async function interopChecks(browser) {
  await buildClientBundle({ sourcemap: false });
  const { server, origin } = await serveClient();
  const room = `whip-interop-${Date.now().toString(36)}`;
  const mId = `ms${crypto.randomBytes(3).toString('hex')}`;
  const opened = [];
  const page = async (b, name, query) => {
    const ctx = await b.newContext();
    await ctx.grantPermissions(['camera', 'microphone'], { origin });
    const p = await ctx.newPage();
    p.on('console', (m) => { if (m.type() === 'error') console.log(`[${name}] ${m.text()}`); });
    await p.goto(`${origin}/?${new URLSearchParams(query)}`);
    await p.waitForFunction(() => !!window.__rs, null, { timeout: 10000 });
    opened.push(ctx);
    return p;
  };
  let viewer = null;
  try {
    // M: mediasoup-client 3.24 through protoo, publishing and consuming.
    const M = await page(browser, 'M', { server: WS, roomId: room, peerId: mId, displayName: 'mediasoup-client', datachannel: 'false' });
    const snap = () => M.evaluate(() => window.__rs.snapshot());
    let [ok, s] = await poll(snap, (x) => x.error || (x.producers && x.producers.audio && x.producers.video), 30000);
    check('interop: mediasoup-client peer joins and produces', ok && !s.error, `phase=${s.phase} error=${s.error}`);
    if (!ok || s.error) return;
    await M.evaluate(() => window.__rs.playAudio());

    // W: WHIP publisher, plain RTCPeerConnection.
    const W = await page(browser, 'W', { autojoin: 'false' });
    const pub = await W.evaluate(plainSession, { url: `${BASE}/whip/${room}?name=whip-cam`, token: TOKEN, send: true });
    check('interop: WHIP POST from a plain RTCPeerConnection → 201', pub.status === 201 && !!pub.location, JSON.stringify(pub));
    if (pub.status !== 201) return;
    const whipId = pub.location.split('/').pop();

    [ok, s] = await poll(snap, (x) => (x.notifications || []).some((n) => n.method === 'newPeer' && n.data.id === whipId), 15000);
    check('interop: mediasoup-client peer gets newPeer for the WHIP publisher', ok, `no newPeer for ${whipId}: ${JSON.stringify((s.notifications || []).filter((n) => n.method === 'newPeer'))}`);
    [ok, s] = await poll(snap, (x) => ['audio', 'video'].every((k) => (x.consumers || []).some((c) => c.peerId === whipId && c.kind === k)), 15000);
    check('interop: mediasoup-client peer gets newConsumer for the WHIP audio and video', ok, `consumers: ${JSON.stringify((s.consumers || []).map((c) => `${c.kind}@${c.peerId}`))}`);
    const mStats = async () => (await M.evaluate(() => window.__rs.getStats())).filter((r) => r.peerId === whipId);
    const row = (rows, kind) => (rows.find ? rows.find((r) => r.kind === kind) : null) || {};
    const base = await mStats();
    const v0 = row(base, 'video').framesDecoded || 0;
    const a0 = row(base, 'audio');
    let rows;
    [ok, rows] = await poll(mStats, (r) => (row(r, 'video').framesDecoded || 0) >= v0 + 30 && row(r, 'video').frameWidth > 0, 30000);
    const vr = row(rows, 'video');
    check('interop: mediasoup-client peer decodes the WHIP video', ok, `framesDecoded ${v0} → ${vr.framesDecoded}, ${vr.frameWidth}x${vr.frameHeight}`);
    if (ok) console.log(`  M decodes the WHIP camera at ${vr.frameWidth}x${vr.frameHeight}`);
    [ok, rows] = await poll(mStats, (r) => (row(r, 'audio').packetsReceived || 0) >= (a0.packetsReceived || 0) + 50
      && (row(r, 'audio').totalAudioEnergy || 0) > (a0.totalAudioEnergy || 0), 30000);
    const ar = row(rows, 'audio');
    check('interop: mediasoup-client peer receives the WHIP audio', ok, `packetsReceived ${a0.packetsReceived} → ${ar.packetsReceived}, totalAudioEnergy ${a0.totalAudioEnergy} → ${ar.totalAudioEnergy}`);

    // V: a second Chromium watches M's producers through WHEP.
    viewer = await launchBrowser();
    const V = await page(viewer, 'V', { autojoin: 'false' });
    const sub = await V.evaluate(plainSession, { url: `${BASE}/whep/${room}/${mId}`, token: TOKEN, send: false });
    check('interop: WHEP POST for the mediasoup-client peer → 201', sub.status === 201 && !!sub.location, JSON.stringify(sub));
    if (sub.status === 201) {
      const vStats = () => V.evaluate(plainStats);
      let st;
      [ok, st] = await poll(vStats, (x) => x.video && x.video.frames >= 30 && x.video.width > 0, 30000);
      check('interop: WHEP viewer (second Chromium) decodes the mediasoup-client peer\'s video', ok, JSON.stringify(st));
      if (ok) console.log(`  WHEP viewer decodes M at ${st.video.width}x${st.video.height}`);
      [ok, st] = await poll(vStats, (x) => x.audio && x.audio.packets >= 50 && x.audio.energy > 0, 30000);
      check('interop: WHEP viewer (second Chromium) receives the mediasoup-client peer\'s audio', ok, JSON.stringify(st));
      const del = await fetch(BASE + sub.location, { method: 'DELETE', headers: auth });
      check('interop: DELETE WHEP session → 200', del.status === 200, del.status);
    }

    // The demo page at / in the same room shows the mediasoup-client peer (through WHEP) and the WHIP one.
    const D = await browser.newContext({ extraHTTPHeaders: auth });
    opened.push(D);
    const dp = await D.newPage();
    await dp.goto(`${BASE}/?room=${room}&name=page`);
    const tiles = () => dp.evaluate(() => [...document.querySelectorAll('.tile')].filter((t) => t.dataset.peer !== 'me')
      .map((t) => { const v = t.querySelector('video'); return { label: t.querySelector('.label').textContent, w: v.videoWidth, time: v.currentTime }; }));
    let tl;
    [ok, tl] = await poll(tiles, (x) => ['mediasoup-client', 'whip-cam'].every((l) => x.some((t) => t.label === l && t.w > 0 && t.time > 0)), 20000);
    check('interop: the demo page in that room plays the mediasoup-client peer and the WHIP publisher', ok, JSON.stringify(tl));
    await D.close();

    // A simulcast WHIP publisher (3 rids, 1280x720 camera): M gets a simulcast consumer and decodes
    // the top layer (1280 wide). It runs in the second Chromium: the fake camera is shared per browser
    // and already open at 640x480 there (M, W), where Chrome would send only two layers.
    const W2 = await page(viewer, 'W2', { autojoin: 'false' });
    const pub2 = await W2.evaluate(plainSession, { url: `${BASE}/whip/${room}?name=whip-simulcast`, token: TOKEN, send: true, simulcast: true });
    check('interop: simulcast WHIP POST (a=simulcast, 3 rids) → 201', pub2.status === 201 && !!pub2.location, JSON.stringify(pub2));
    if (pub2.status === 201) {
      const id2 = pub2.location.split('/').pop();
      [ok, s] = await poll(snap, (x) => (x.consumers || []).some((c) => c.peerId === id2 && c.kind === 'video'), 15000);
      const c2 = (s.consumers || []).find((c) => c.peerId === id2 && c.kind === 'video');
      check('interop: mediasoup-client peer gets a simulcast consumer of the simulcast WHIP video', ok && c2.type === 'simulcast',
        `consumer: ${JSON.stringify(c2)}`);
      if (c2) {
        const one = async () => (await M.evaluate(() => window.__rs.getStats())).find((r) => r.id === c2.id) || {};
        let r2;
        const t0 = Date.now();
        [ok, r2] = await poll(one, (r) => r.framesDecoded >= 30 && r.frameWidth >= 1280, 30000);
        const sent = await W2.evaluate(async () => {
          const o = [];
          (await window.__pc.getStats()).forEach((x) => { if (x.type === 'outbound-rtp' && x.kind === 'video') o.push(`${x.rid}:${x.frameWidth}x${x.frameHeight}`); });
          return o.sort().join(' ');
        });
        check('interop: mediasoup-client peer decodes the simulcast WHIP video at its top layer (1280 wide)', ok,
          `framesDecoded ${r2.framesDecoded}, decoded ${r2.frameWidth}x${r2.frameHeight}; publisher sends ${sent}`);
        if (ok) console.log(`  M decodes the simulcast WHIP camera at ${r2.frameWidth}x${r2.frameHeight} after ${Date.now() - t0} ms (publisher sends ${sent})`);
      }
      // WHEP of the simulcast publisher: the viewer's consumer must climb to the top layer too.
      const V2 = await page(viewer, 'V2', { autojoin: 'false' });
      const sub2 = await V2.evaluate(plainSession, { url: `${BASE}/whep/${room}/${id2}`, token: TOKEN, send: false });
      let st2 = sub2;
      if (sub2.status === 201) {
        [ok, st2] = await poll(() => V2.evaluate(plainStats), (x) => x.video && x.video.frames >= 30 && x.video.width >= 1280, 30000);
      } else ok = false;
      check('interop: WHEP viewer of the simulcast WHIP publisher decodes its top layer (1280 wide)', ok, JSON.stringify(st2));
      if (sub2.location) await fetch(BASE + sub2.location, { method: 'DELETE', headers: auth });
      await fetch(BASE + pub2.location, { method: 'DELETE', headers: auth });
    }

    const del = await fetch(BASE + pub.location, { method: 'DELETE', headers: auth });
    [ok, s] = await poll(snap, (x) => (x.notifications || []).some((n) => n.method === 'peerClosed' && n.data.peerId === whipId), 15000);
    check('interop: DELETE WHIP session → 200, mediasoup-client peer gets peerClosed', del.status === 200 && ok, `DELETE ${del.status}, peerClosed seen: ${ok}`);
  } finally {
    for (const ctx of opened) await ctx.close().catch(() => {});
    if (viewer) await viewer.close().catch(() => {});
    server.close();
  }
}

// The demo page at /?room=NAME in two browser contexts: each must decode the other's video.
async function pageChecks(browser) {
  const room = 'whip-page-' + Date.now();
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const ctx = await browser.newContext({ extraHTTPHeaders: auth });
    const page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.log(`[${name}] ${m.text()}`); });
    const t0 = Date.now();
    await page.goto(`${BASE}/?room=${room}&name=${name}`);
    pages.push({ name, page, t0 });
  }
  for (const [i, { name, page, t0 }] of pages.entries()) {
    const other = pages[1 - i].name;
    let ok = false, why = '';
    const deadline = t0 + 10_000;
    while (Date.now() < deadline + 20_000) {
      const info = await page.evaluate(() => [...document.querySelectorAll('.tile')]
        .filter((t) => t.dataset.peer !== 'me')
        .map((t) => { const v = t.querySelector('video'); return { label: t.querySelector('.label').textContent, w: v.videoWidth, time: v.currentTime }; }));
      const seen = info.find((x) => x.label === other && x.w > 0 && x.time > 0);
      if (seen) { ok = Date.now() <= deadline; why = `after ${Date.now() - t0} ms`; break; }
      why = JSON.stringify(info);
      await new Promise((r) => setTimeout(r, 250));
    }
    check(`demo page: ${name} decodes ${other}'s video within 10 s`, ok, why);
    const list = await page.locator('#peers').innerText();
    check(`demo page: ${name}'s peer list shows ${other}`, list.includes(other), list);
  }
  await new Promise((r) => setTimeout(r, 2000)); // let the stats overlay fill in
  await mkdir(OUT, { recursive: true });
  for (const { name, page } of pages) {
    await page.screenshot({ path: path.join(OUT, `demo-${name}.png`) });
  }
  const stats = await pages[0].page.locator('.tile:not([data-peer="me"]) .stats').first().innerText();
  check('demo page shows resolution and bitrate', /[1-9]\d*x[1-9]\d* \d+ kbit\/s/.test(stats), stats);
  for (const { page } of pages) await page.context().close();
}

const timer = setTimeout(() => { console.log('FAIL whip.mjs: hard timeout'); process.exit(1); }, 240_000);
try {
  await httpChecks();
  const browser = await launchBrowser();
  try {
    await interopChecks(browser);
    await pageChecks(browser);
  } finally { await browser.close(); }
} catch (e) {
  check('whip.mjs', false, e.stack || e);
}
clearTimeout(timer);
const missing = REQUIRED.filter((n) => !reported.has(n));
if (missing.length) check('required checks', false, `never reached: ${missing.join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
