#!/usr/bin/env node
// WHIP/WHEP and the demo page at `/`, against an already running ringsfu server.
//
//   node whip.mjs            all checks: HTTP statuses, then the demo page in two browser contexts
//
// Environment: RINGSFU_HTTP (default http://127.0.0.1:4443), RINGSFU_WHIP_TOKEN (the token the
// server was started with, if any), CHROMIUM_PATH, WHIP_OUT (output folder, default dist/whip).
// Output: `PASS name` / `FAIL name: why` lines, then `N passed, M failed`; exit 1 on a failure.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './lib/browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BASE = process.env.RINGSFU_HTTP || 'http://127.0.0.1:4443';
const TOKEN = process.env.RINGSFU_WHIP_TOKEN || '';
const OUT = process.env.WHIP_OUT || path.join(HERE, 'dist', 'whip');

let passed = 0, failed = 0;
function check(name, ok, why) {
  if (ok) { passed++; console.log(`PASS ${name}`); } else { failed++; console.log(`FAIL ${name}: ${why}`); }
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
  check('demo page shows resolution and bitrate', /\d+x\d+ \d+ kbit\/s/.test(stats), stats);
  for (const { page } of pages) await page.context().close();
}

const timer = setTimeout(() => { console.log('FAIL whip.mjs: hard timeout'); process.exit(1); }, 120_000);
try {
  await httpChecks();
  const browser = await launchBrowser();
  try { await pageChecks(browser); } finally { await browser.close(); }
} catch (e) {
  check('whip.mjs', false, e.stack || e);
}
clearTimeout(timer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
