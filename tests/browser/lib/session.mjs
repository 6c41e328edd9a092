// Shared by the scripted browser sessions (quality.mjs, layers.mjs, downlink.mjs): PASS/FAIL
// reporting, the bounded scenario runner, the page console log, polling, and opening one peer of
// the test page (app/client.js) in a browser.

import { appendFile } from 'node:fs/promises';

/**
 * PASS/FAIL lines and their counts: `pass(name, detail)`, `fail(name, why)`, `summary()`
 * (`N passed, M failed`); `passed` and `failed` are the counts so far.
 */
export function createReport() {
  const report = {
    passed: 0,
    failed: 0,
    pass(name, detail = '') {
      report.passed += 1;
      console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
    },
    fail(name, why) {
      report.failed += 1;
      console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, ' ').trim()}`);
    },
    summary: () => `${report.passed} passed, ${report.failed} failed`,
  };
  return report;
}

/**
 * Runs one scenario to its summary line and exits the process (status 1 on any failure): `body`
 * runs under a hard timeout of `hardTimeoutS` seconds; an error it throws is a FAIL of `name`;
 * `cleanup` (closing browsers, servers, network namespaces) runs in every case, the timeout
 * included, before the summary.
 */
export async function runScenario({ name, report, hardTimeoutS, cleanup = async () => {} }, body) {
  const finish = async () => {
    await Promise.resolve().then(cleanup).catch((e) => console.log(`# cleanup: ${e.message || e}`));
    console.log(report.summary());
    process.exit(report.failed ? 1 : 0);
  };
  const hard = setTimeout(() => {
    report.fail(name, `hard timeout ${hardTimeoutS} s`);
    finish();
  }, hardTimeoutS * 1000);
  try {
    await body();
  } catch (error) {
    report.fail(`${name} scenario`, error.message || error);
  }
  clearTimeout(hard);
  await finish();
}

/** A function appending a timestamped line to `file` (errors ignored). */
export function fileLogger(file) {
  return (line) => {
    appendFile(file, `${new Date().toISOString()} ${line}\n`).catch(() => {});
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Bits per second as `123k`, `-` when unknown. */
export const kbps = (bps) => (bps == null ? '-' : `${Math.round(bps / 1000)}k`);

/** Polls `probe` every 250 ms until `ok(value)`; throws with `explain(value)` after `timeoutMs`. */
export async function waitFor(probe, ok, timeoutMs, explain) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s: ${explain(v)}`);
    await sleep(250);
  }
}

/**
 * Opens the test page served at `origin` in a new context of `browser` as peer `name` of `roomId`
 * on the server `ws` (no data channel; `params` add to the page's query), its console going to
 * `log`. Returns { name, page, snapshot(), stats(), transportStats() } (window.__rs).
 */
export async function openPeer(browser, origin, { ws, name, roomId, params = {}, log, gotoTimeoutMs = 15000 }) {
  const context = await browser.newContext();
  await context.grantPermissions(['camera', 'microphone'], { origin });
  const page = await context.newPage();
  page.on('console', (m) => log(`[${name}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`[${name}] pageerror: ${e.stack || e}`));
  const q = new URLSearchParams({ server: ws, roomId, peerId: name, displayName: name, datachannel: 'false', ...params });
  await page.goto(`${origin}/?${q}`, { waitUntil: 'load', timeout: gotoTimeoutMs });
  await page.waitForFunction(() => !!window.__rs, null, { timeout: 10000 });
  return {
    name,
    page,
    snapshot: () => page.evaluate(() => window.__rs.snapshot()),
    stats: () => page.evaluate(() => window.__rs.getStats()),
    transportStats: () => page.evaluate(() => window.__rs.getTransportStats()),
  };
}
