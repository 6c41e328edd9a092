// Shared by the browser tests (run.mjs, quality.mjs, layers.mjs, downlink.mjs, calls.mjs, whip.mjs): the Chromium binary and
// flags, launching it, and bundling + serving the mediasoup-client test page (app/client.js).

import { mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';

/** tests/browser */
export const HERE = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
/** Build output (git-ignored): the page bundle, console logs, screenshots. */
export const DIST = path.join(HERE, 'dist');
/** Debian's Chromium; `CHROMIUM_PATH` (or the older `CHROMIUM`) overrides it. Nothing is downloaded. */
export const CHROMIUM = process.env.CHROMIUM_PATH || process.env.CHROMIUM || '/usr/bin/chromium';

// Chromium flags. The SFU is ICE-Lite and only announces 127.0.0.1 host candidates, so the
// browser must be allowed to gather on the loopback interface (--allow-loopback-in-peer-connection);
// the real-IP policy and disabled mDNS obfuscation keep its own candidates plain IPs in the logs.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--force-webrtc-ip-handling-policy=default',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  // Background/hidden pages must keep decoding at full rate.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** Launches headless Chromium with CHROMIUM_ARGS (plus `extraArgs`), fresh profile. */
export function launchBrowser({ extraArgs = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    timeout: 30000,
  });
}

/** Bundles app/client.js (mediasoup-client + protoo-client) into dist/client.js. */
export async function buildClientBundle({ sourcemap = true } = {}) {
  await mkdir(DIST, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(HERE, 'app', 'client.js')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome100'],
    sourcemap: sourcemap ? 'inline' : false,
    outfile: path.join(DIST, 'client.js'),
    logLevel: 'warning',
  });
}

/**
 * Serves index.html and dist/client.js on a random 127.0.0.1 port (a secure context, so
 * getUserMedia works). Returns { server, origin }.
 */
export async function serveClient() {
  const files = {
    '/': { type: 'text/html; charset=utf-8', file: path.join(HERE, 'index.html') },
    '/index.html': { type: 'text/html; charset=utf-8', file: path.join(HERE, 'index.html') },
    '/dist/client.js': { type: 'text/javascript; charset=utf-8', file: path.join(DIST, 'client.js') },
  };
  const server = http.createServer(async (req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    if (pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const entry = files[pathname];
    if (!entry) {
      res.writeHead(404).end('not found');
      return;
    }
    try {
      const body = await readFile(entry.file);
      res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-store' }).end(body);
    } catch (error) {
      res.writeHead(500).end(String(error));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/**
 * Bundles and serves the test page, launches one Chromium, runs `fn(browser, origin)` and closes
 * both whatever happens.
 */
export async function withPageAndBrowser(fn) {
  await buildClientBundle({ sourcemap: false });
  const { server, origin } = await serveClient();
  try {
    const browser = await launchBrowser();
    try {
      return await fn(browser, origin);
    } finally {
      await browser.close().catch(() => {});
    }
  } finally {
    server.close();
  }
}
