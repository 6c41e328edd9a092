#!/usr/bin/env node
// Real-session quality test (issue 13): congestion feedback and layer selection as a browser sees
// them. Needs a running ringsfu server (RINGSFU_WS, as run.mjs).
//
// Scenario "uplink": peer P publishes its fake camera at 1280x720 as the mediasoup-demo's 3-layer
// VP8 simulcast (×4/×2/×1, L1T3); peer V consumes it. Checks, as a user would notice them:
//   1. P's send transport estimate (availableOutgoingBitrate of the selected candidate pair) is
//      ≥ 1.5 Mbps from 20 s after producing to the end of the window (26 s): Chrome's GoogCC
//      decays it to ~100 kbps within 20 s unless the SFU answers with transport-cc feedback;
//   2. P sends all three layers (outbound-rtp 320, 640 and 1280 wide, bytes growing) throughout
//      that stretch;
//   3. V decodes 1280x720 at the end.
// Prints the measured timeline (estimate, per-layer width and fps, limitation reason, V's decoded
// size and receive rate) so runs can be compared.
//
// Usage: node quality.mjs            (RINGSFU_WS=ws://127.0.0.1:PORT)
// Environment: RINGSFU_WS, CHROMIUM_PATH, RINGSFU_QUALITY_SECONDS (observation window, default 20),
//   RINGSFU_BROWSER_LOG (default dist/quality-console.log).
// Output: `PASS name` / `FAIL name: why` lines, then `N passed, M failed`; exit status 1 on failure.

import path from 'node:path';
import { DIST, withPageAndBrowser } from './lib/browser.mjs';
import { createReport, fileLogger, kbps, openPeer, runScenario, waitFor } from './lib/session.mjs';

const SERVER_WS = process.env.RINGSFU_WS || 'ws://127.0.0.1:4443';
const WINDOW_S = Number(process.env.RINGSFU_QUALITY_SECONDS || 26);
// Checks hold over the end of the window (t ≥ 20 s): without feedback Chrome starts high and
// collapses within ~15 s, so an early sample proves nothing.
const HOLD_FROM_S = 20;
const LOG_FILE = process.env.RINGSFU_BROWSER_LOG || path.join(DIST, 'quality-console.log');
const HARD_TIMEOUT_S = 150;

const report = createReport();
const { pass, fail } = report;
const logLine = fileLogger(LOG_FILE);

async function uplinkScenario(browser, origin) {
  const roomId = `quality-${Date.now().toString(36)}`;
  const pub = await openPeer(browser, origin, { ws: SERVER_WS, name: 'pub', roomId, params: { simulcast: 'true', hd: 'true', consume: 'false' }, log: logLine });
  const s = await waitFor(pub.snapshot, (x) => x.producers.video || x.error, 30000, (x) => `phase=${x.phase} error=${x.error}`);
  if (!s.producers.video) throw new Error(`publisher did not produce video: ${s.error}`);
  const local = s.localVideo && s.localVideo.settings;
  console.log(`# publisher camera ${local && local.width}x${local && local.height}`);
  const viewer = await openPeer(browser, origin, { ws: SERVER_WS, name: 'viewer', roomId, params: { produce: 'false' }, log: logLine });
  const t0 = Date.now();
  const timeline = [];
  let reached = null; // s when the estimate first reached 1.5 Mbps
  let allLayers = null; // s when all three layers were first seen flowing
  let decoded720 = null;
  let lastBytes = {};
  let lastRecv = null;
  let maxEstimate = 0;
  let minHeld = Infinity; // lowest estimate from HOLD_FROM_S on
  let layersHeld = true; // all three layers flowing in every sample from HOLD_FROM_S on
  let viewerAtEnd = null;
  let samplesHeld = 0;
  const deadline = t0 + WINDOW_S * 1000;
  while (Date.now() < deadline || (Date.now() < t0 + (WINDOW_S + 15) * 1000 && !decoded720)) {
    await new Promise((r) => setTimeout(r, 1000));
    const t = (Date.now() - t0) / 1000;
    const ts = await pub.transportStats();
    const send = ts.send || { outbound: [] };
    const est = send.availableOutgoingBitrate;
    maxEstimate = Math.max(maxEstimate, est || 0);
    if (reached === null && est >= 1.5e6) reached = t;
    const layers = send.outbound
      .slice()
      .sort((a, b) => (a.rid || '').localeCompare(b.rid || ''))
      .map((o) => {
        const grew = o.bytesSent > (lastBytes[o.rid] || 0);
        const rate = ((o.bytesSent - (lastBytes[o.rid] || 0)) * 8);
        lastBytes[o.rid] = o.bytesSent;
        return { rid: o.rid, w: o.frameWidth, fps: o.framesPerSecond, grew, rate, why: o.qualityLimitationReason };
      });
    const widths = new Set(layers.filter((l) => l.grew && l.w > 0).map((l) => l.w));
    if (allLayers === null && [320, 640, 1280].every((w) => widths.has(w))) allLayers = t;
    const vstats = (await viewer.stats()).find((r) => r.kind === 'video');
    let recvRate = null;
    if (vstats) {
      if (lastRecv !== null) recvRate = (vstats.bytesReceived - lastRecv) * 8;
      lastRecv = vstats.bytesReceived;
      if (!decoded720 && vstats.frameWidth === 1280 && vstats.frameHeight === 720) decoded720 = t;
      viewerAtEnd = `${vstats.frameWidth}x${vstats.frameHeight}`;
    }
    if (t >= HOLD_FROM_S) {
      samplesHeld += 1;
      minHeld = Math.min(minHeld, est || 0);
      if (![320, 640, 1280].every((w) => widths.has(w))) layersHeld = false;
    }
    const line = `t=${t.toFixed(1)}s estimate=${kbps(est)} layers=${layers.map((l) => `${l.rid}:${l.w}w/${l.fps}fps/${kbps(l.rate)}/${l.why}`).join(' ')} viewer=${vstats ? `${vstats.frameWidth}x${vstats.frameHeight} ${kbps(recvRate)}` : '-'}`;
    timeline.push(line);
    console.log(`# ${line}`);
  }
  const summary = `first ≥ 1.5 Mbps at ${reached === null ? 'never' : `${reached.toFixed(1)} s`}, max ${kbps(maxEstimate)}, lowest from ${HOLD_FROM_S} s ${kbps(minHeld)}`;
  const last = timeline[timeline.length - 1];
  if (samplesHeld >= 3 && minHeld >= 1.5e6) pass(`publisher estimate ≥ 1.5 Mbps from ${HOLD_FROM_S} s on`, summary);
  else fail(`publisher estimate ≥ 1.5 Mbps from ${HOLD_FROM_S} s on`, summary);
  if (samplesHeld >= 3 && layersHeld) pass(`publisher sends all three layers (320/640/1280 wide) from ${HOLD_FROM_S} s on`, `all three first at ${allLayers === null ? '-' : allLayers.toFixed(1)} s`);
  else fail(`publisher sends all three layers (320/640/1280 wide) from ${HOLD_FROM_S} s on`, last);
  if (viewerAtEnd === '1280x720') pass('viewer decodes 1280x720', `first at ${decoded720.toFixed(1)} s, still at the end`);
  else fail('viewer decodes 1280x720', `at the end: ${viewerAtEnd}; ${last}`);
}

runScenario({ name: 'quality', report, hardTimeoutS: HARD_TIMEOUT_S }, () => withPageAndBrowser(uplinkScenario));
