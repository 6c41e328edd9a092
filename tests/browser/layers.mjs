#!/usr/bin/env node
// Preferred layers and priority as a viewer sees them (issue 13, "Done means" 3). Needs a running
// ringsfu server (RINGSFU_WS, as run.mjs).
//
// Peers A and B each publish their fake camera at 1280x720 as the mediasoup-demo's 3-layer VP8
// simulcast (×4/×2/×1, L1T3); viewer V consumes both on its one receive transport. Checks, from
// what V decodes (inbound-rtp frameWidth, framesDecoded):
//   1. priority: V's receive transport is capped (demo request setTransportMaxOutgoingBitrate) at
//      about one top layer plus one middle layer of what A and B send; with A's consumer at
//      priority 2 and B's at 1, A decodes 1280 wide and B less; swapping the priorities
//      (setConsumerPriority) swaps them;
//   2. preferred layers: setConsumerPreferredLayers {spatialLayer: 0} on the consumer that is at
//      1280 makes it decode 320 wide within 2 s, {spatialLayer: 2} brings it back to 1280;
//   3. temporal: {spatialLayer: 2, temporalLayer: 0} drops its decoded frame rate to a third
//      (≤ 12 fps: L1T3's base layer is 7.5 of 30 fps) and {temporalLayer: 2} brings it back
//      (≥ 15 fps and twice the low rate); consumerLayersChanged reported temporalLayer 0 and 2.
// Prints the timeline (estimate, widths, fps) so runs can be compared.
//
// Usage: node layers.mjs            (RINGSFU_WS=ws://127.0.0.1:PORT)
// Output: `PASS name` / `FAIL name: why` lines, then `N passed, M failed`; exit status 1 on failure.

import path from 'node:path';
import { DIST, withPageAndBrowser } from './lib/browser.mjs';
import { createReport, fileLogger, kbps, openPeer, runScenario, sleep, waitFor } from './lib/session.mjs';

const SERVER_WS = process.env.RINGSFU_WS || 'ws://127.0.0.1:4443';
const LOG_FILE = process.env.RINGSFU_BROWSER_LOG || path.join(DIST, 'layers-console.log');
const HARD_TIMEOUT_S = 150;

const report = createReport();
const { pass, fail } = report;
const logLine = fileLogger(LOG_FILE);
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);

/** Bitrate per rid of a publisher's three layers, measured over `ms`. */
async function layerRates(peer, ms) {
  const bytes = async () => {
    const ts = await peer.transportStats();
    return Object.fromEntries(((ts.send && ts.send.outbound) || []).map((o) => [o.rid, o.bytesSent]));
  };
  const a = await bytes();
  await sleep(ms);
  const b = await bytes();
  return Object.fromEntries(Object.keys(b).map((rid) => [rid, ((b[rid] - (a[rid] || 0)) * 8 * 1000) / ms]));
}

async function scenario(browser, origin) {
  const roomId = `layers-${Date.now().toString(36)}`;
  const pubParams = { simulcast: 'true', hd: 'true', consume: 'false' };
  const [a, b] = await Promise.all(
    ['a', 'b'].map((name) => openPeer(browser, origin, { ws: SERVER_WS, name, roomId, params: pubParams, log: logLine })),
  );
  for (const p of [a, b]) {
    const s = await waitFor(p.snapshot, (x) => x.producers.video || x.error, 30000, (x) => `phase=${x.phase} error=${x.error}`);
    if (!s.producers.video) throw new Error(`${p.name} did not produce video: ${s.error}`);
  }
  const v = await openPeer(browser, origin, { ws: SERVER_WS, name: 'viewer', roomId, params: { produce: 'false' }, log: logLine });
  const req = (method, data) => v.page.evaluate(([m, d]) => window.__rs.request(m, d), [method, data]);
  // V's video consumers of A and B.
  const snap = await waitFor(
    v.snapshot,
    (x) => x.transports.recv && ['a', 'b'].every((p) => x.consumers.some((c) => c.kind === 'video' && c.peerId === p)),
    20000,
    (x) => JSON.stringify(x.consumers.map((c) => [c.peerId, c.kind])),
  );
  const consumerOf = Object.fromEntries(['a', 'b'].map((p) => [p, snap.consumers.find((c) => c.kind === 'video' && c.peerId === p).id]));
  const recvTransport = snap.transports.recv.id;

  // Decoded width and frame rate per publisher, from V's inbound-rtp (fps over the last sample).
  let last = {};
  const sample = async () => {
    const rows = (await v.stats()).filter((r) => r.kind === 'video');
    const now = Date.now();
    const out = {};
    for (const r of rows) {
      const prev = last[r.peerId];
      const fps = prev ? ((r.framesDecoded - prev.frames) * 1000) / (now - prev.t) : null;
      const rate = prev ? ((r.bytesReceived - prev.bytes) * 8 * 1000) / (now - prev.t) : null;
      out[r.peerId] = { w: r.frameWidth || 0, fps, rate };
      last[r.peerId] = { frames: r.framesDecoded, bytes: r.bytesReceived, t: now };
    }
    const bwe = (await v.snapshot()).notifications.filter((n) => n.method === 'downlinkBwe').pop();
    const line = `t=${secs()}s bwe=${kbps(bwe && bwe.data.availableBitrate)} ${['a', 'b']
      .map((p) => (out[p] ? `${p}:${out[p].w}w/${out[p].fps == null ? '-' : out[p].fps.toFixed(0)}fps/${kbps(out[p].rate)}` : `${p}:-`))
      .join(' ')}`;
    console.log(`# ${line}`);
    return out;
  };
  // Polls `sample` every 500 ms until `ok(s)`; returns the seconds it took, or throws.
  const until = async (what, ok, timeoutMs) => {
    const start = Date.now();
    let s;
    for (;;) {
      await sleep(500);
      s = await sample();
      if (ok(s)) return (Date.now() - start) / 1000;
      if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s: ${JSON.stringify(s)}`);
    }
  };
  const check = async (name, what, ok, timeoutMs) => {
    try {
      const took = await until(what, ok, timeoutMs);
      pass(name, `${took.toFixed(1)} s`);
      return true;
    } catch (error) {
      fail(name, error.message);
      return false;
    }
  };

  // 1. Priority on a constrained transport: cap at one top layer + one middle layer.
  await waitFor(
    async () => [await layerRates(a, 1000), await layerRates(b, 1000)],
    (rs) => rs.every((r) => Object.keys(r).length === 3 && Object.values(r).every((x) => x > 0)),
    20000,
    (rs) => JSON.stringify(rs),
  );
  const [ra, rb] = [await layerRates(a, 2000), await layerRates(b, 2000)];
  const sorted = (r) => Object.values(r).sort((x, y) => x - y);
  const top = Math.max(sorted(ra)[2], sorted(rb)[2]);
  const mid = Math.max(sorted(ra)[1], sorted(rb)[1]);
  const cap = Math.round(top * 1.15 + mid * 0.6);
  console.log(`# publisher layers a=${sorted(ra).map(kbps)} b=${sorted(rb).map(kbps)}; cap ${kbps(cap)}`);
  await req('setTransportMaxOutgoingBitrate', { transportId: recvTransport, bitrate: cap });
  await req('setConsumerPriority', { consumerId: consumerOf.a, priority: 2 });
  await req('setConsumerPriority', { consumerId: consumerOf.b, priority: 1 });
  await sample();
  const okA = await check('priority 2 (a) gets 1280 wide, priority 1 (b) less, on a capped transport', 'a 1280 / b < 1280',
    (s) => s.a && s.b && s.a.w === 1280 && s.b.w > 0 && s.b.w < 1280, 30000);
  if (!okA) return;
  await req('setConsumerPriority', { consumerId: consumerOf.a, priority: 1 });
  await req('setConsumerPriority', { consumerId: consumerOf.b, priority: 2 });
  const okB = await check('swapping priorities swaps who gets 1280 wide', 'b 1280 / a < 1280',
    (s) => s.a && s.b && s.b.w === 1280 && s.a.w > 0 && s.a.w < 1280, 20000);
  if (!okB) return;

  // 2. Preferred spatial layer on B (now the one at 1280).
  await req('setConsumerPreferredLayers', { consumerId: consumerOf.b, spatialLayer: 0 });
  await check('setConsumerPreferredLayers spatial 0: 320 wide within 2 s', 'b 320', (s) => s.b && s.b.w === 320, 2000);
  await req('setConsumerPreferredLayers', { consumerId: consumerOf.b, spatialLayer: 2 });
  await check('setConsumerPreferredLayers spatial 2: back to 1280 wide', 'b 1280', (s) => s.b && s.b.w === 1280, 10000);

  // 3. Preferred temporal layer on B: base layer only, then all again.
  await req('setConsumerPreferredLayers', { consumerId: consumerOf.b, spatialLayer: 2, temporalLayer: 0 });
  await sleep(1000); // the rate over a sample that straddles the switch is a mix
  await sample();
  let lowFps = null;
  await check('setConsumerPreferredLayers temporal 0: decoded frame rate ≤ 12 fps, still 1280 wide', 'b ≤ 12 fps',
    (s) => {
      const ok = s.b && s.b.fps != null && s.b.fps <= 12 && s.b.fps > 0 && s.b.w === 1280;
      if (ok) lowFps = s.b.fps;
      return ok;
    }, 8000);
  await req('setConsumerPreferredLayers', { consumerId: consumerOf.b, spatialLayer: 2, temporalLayer: 2 });
  await sleep(1000);
  await sample();
  // Two headless decoders share a loaded machine: full rate is 15-30 fps there, so "back" is at
  // least 15 fps and twice the base layer's rate just measured.
  const backFps = Math.max(15, 2 * (lowFps || 7.5));
  await check(`setConsumerPreferredLayers temporal 2: decoded frame rate back ≥ ${backFps.toFixed(0)} fps`, 'b fps back',
    (s) => s.b && s.b.fps != null && s.b.fps >= backFps, 8000);
  const layerNotes = (await v.snapshot()).notifications
    .filter((n) => n.method === 'consumerLayersChanged' && n.data.consumerId === consumerOf.b)
    .map((n) => `${n.data.spatialLayer}/${n.data.temporalLayer}`);
  const i0 = layerNotes.lastIndexOf('2/0');
  if (i0 >= 0 && layerNotes.slice(i0).includes('2/2')) pass('consumerLayersChanged reported temporalLayer 0 then 2', layerNotes.join(' '));
  else fail('consumerLayersChanged reported temporalLayer 0 then 2', layerNotes.join(' '));
}

runScenario({ name: 'layers', report, hardTimeoutS: HARD_TIMEOUT_S }, () => withPageAndBrowser(scenario));
