// Sets up mediasoup (one worker, one router) as the forwarder of a ringsfu-bench `external` run
// and writes the traffic plan (bench/README.md, "Plan file (`external`)") for it.
//
// The setup mirrors what `ringsfu-bench fanout` asks of ringsfu, so both forwarders carry the
// same traffic: per producer one SRTP PlainTransport (AES_CM_128_HMAC_SHA1_80, rtcp-mux, not
// comedia, connected to the generator's fixed source address) producing opus PT 111 (--size
// below 1000) or VP8 PT 96 (1000 and up); per consumer one SRTP PlainTransport connected to its
// receiver's address, consuming with the bench's receive capabilities (opus/VP8, nack/pli/fir for
// video, only the sdes:mid header extension, no RTX).
//
// Usage (MEDIASOUP_WORKER_BIN names the worker built from source, see bench/README.md):
//   node mediasoup-plan.mjs --producers 1 --consumers 10 --size 160 --plan-out plan.json [--core 0]
//   [--rtc-ports 10000-19999] [--log-level warn] [--stats]
// --core pins the worker (taskset) to that core.
// --stats prints mediasoup's own counters of the first producer and consumer when it stops.
// It prints the worker's pid, writes the plan (with server_pid = that pid, so the bench charges
// the whole worker process's CPU) and runs until stdin closes or it gets SIGINT/SIGTERM.

import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { writeFileSync, renameSync } from 'node:fs';
import mediasoup from 'mediasoup';

const HOST = '127.0.0.1';
const SUITE = 'AES_CM_128_HMAC_SHA1_80';

function parseArgs(argv) {
	const o = { producers: 1, consumers: 10, size: 160, planOut: null, core: null, logLevel: 'warn', stats: false, rtcPorts: [10000, 19999] };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
			return argv[++i];
		};
		const int = (v) => {
			const n = Number(v);
			if (!Number.isInteger(n) || n < 0) throw new Error(`${a}: not a count: ${v}`);
			return n;
		};
		switch (a) {
			case '--producers': o.producers = int(val()); break;
			case '--consumers': o.consumers = int(val()); break;
			case '--size': o.size = int(val()); break;
			case '--plan-out': o.planOut = val(); break;
			case '--core': o.core = int(val()); break;
			case '--log-level': o.logLevel = val(); break;
			case '--stats': o.stats = true; break;
			case '--rtc-ports': o.rtcPorts = val().split('-').map(int); break;
			default: throw new Error(`unknown option ${a}`);
		}
	}
	if (!o.planOut) throw new Error('--plan-out FILE is required');
	if (o.producers < 1 || o.producers * (1 + o.consumers) > 20000) {
		throw new Error('--producers must be >= 1 and producers*(1+consumers) <= 20000');
	}
	return o;
}

// Free UDP ports on 127.0.0.1 for the bench's sockets: each stays bound (so no two are the same
// and mediasoup cannot take one) until releasePorts(), just before the plan is written; the bench
// binds them a moment later. mediasoup's own ports come from a range below the kernel's ephemeral
// range (--rtc-ports), so the two never collide.
const held = [];
function freePort() {
	return new Promise((resolve, reject) => {
		const s = createSocket('udp4');
		s.once('error', reject);
		s.bind(0, HOST, () => {
			held.push(s);
			resolve(s.address().port);
		});
	});
}

function releasePorts() {
	return Promise.all(held.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
}

// SDES-style SRTP parameters: base64 of a 16-byte master key followed by a 14-byte salt.
function randomSrtp() {
	return { cryptoSuite: SUITE, keyBase64: randomBytes(30).toString('base64') };
}

const toPlanSrtp = (p) => ({ suite: p.cryptoSuite, key_base64: p.keyBase64 });

const MEDIA_CODECS = [
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

// The receive capabilities ringsfu-bench gives ringsfu's consumers (bench/src/server.rs).
const CONSUMER_CAPS = {
	codecs: [
		{ kind: 'audio', mimeType: 'audio/opus', preferredPayloadType: 100, clockRate: 48000,
			channels: 2, rtcpFeedback: [] },
		{ kind: 'video', mimeType: 'video/VP8', preferredPayloadType: 101, clockRate: 90000,
			rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] },
	],
	headerExtensions: [
		{ kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
		{ kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
	],
};

function producerParams(video, ssrc) {
	const codec = video
		? { mimeType: 'video/VP8', payloadType: 96, clockRate: 90000,
			rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] }
		: { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 };
	return { codecs: [codec], headerExtensions: [], encodings: [{ ssrc }], rtcp: { cname: 'bench' } };
}

// Returns the transport and the key the remote encrypts what it sends with (mediasoup decrypts
// with it); the transport's own `srtpParameters` is the key mediasoup encrypts its sending with.
async function plainTransport(router, remotePort) {
	const t = await router.createPlainTransport({
		listenIp: HOST,
		rtcpMux: true,
		comedia: false,
		enableSrtp: true,
		srtpCryptoSuite: SUITE,
	});
	const remoteKey = randomSrtp();
	await t.connect({ ip: HOST, port: remotePort, srtpParameters: remoteKey });
	return { t, remoteKey };
}

async function main() {
	const o = parseArgs(process.argv.slice(2));
	if (!process.env.MEDIASOUP_WORKER_BIN) {
		console.error('note: MEDIASOUP_WORKER_BIN is not set; mediasoup looks for its own build');
	}
	const worker = await mediasoup.createWorker({ logLevel: o.logLevel, rtcMinPort: o.rtcPorts[0], rtcMaxPort: o.rtcPorts[1] });
	if (o.core !== null) {
		// Pin the worker like ringsfu's in-process worker 0 (core 0); the bench's clients go elsewhere.
		execFileSync('taskset', ['-pc', String(o.core), String(worker.pid)], { stdio: 'ignore' });
	}
	console.log(`mediasoup ${mediasoup.version} worker pid ${worker.pid}`);
	worker.on('died', (e) => {
		console.error(`mediasoup worker died: ${e}`);
		process.exit(1);
	});
	const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
	const video = o.size >= 1000;
	const plan = { producers: [], consumers: [], server_pid: worker.pid };
	const watched = []; // the first producer and its first consumer, for --stats
	for (let i = 0; i < o.producers; i++) {
		const bindPort = await freePort();
		const { t: pt, remoteKey } = await plainTransport(router, bindPort);
		const ssrc = 1111 + i;
		const producer = await pt.produce({ kind: video ? 'video' : 'audio', rtpParameters: producerParams(video, ssrc) });
		if (i === 0) watched.push(['producer', producer]);
		plan.producers.push({
			send_to: `${HOST}:${pt.tuple.localPort}`,
			bind: `${HOST}:${bindPort}`,
			ssrc,
			payload_type: video ? 96 : 111,
			vp8: video,
			// The generator plays the remote: it encrypts with the key given in connect().
			srtp: toPlanSrtp(remoteKey),
		});
		for (let k = 0; k < o.consumers; k++) {
			const listenPort = await freePort();
			const { t: ct } = await plainTransport(router, listenPort);
			const consumer = await ct.consume({ producerId: producer.id, rtpCapabilities: CONSUMER_CAPS, paused: false });
			// Video consumers then wait for a keyframe; the bench's VP8 stream starts with one.
			await consumer.resume();
			if (i === 0 && k === 0) watched.push(['consumer', consumer]);
			plan.consumers.push({
				listen: `${HOST}:${listenPort}`,
				producer: i,
				ssrc: consumer.rtpParameters.encodings[0].ssrc,
				payload_type: consumer.rtpParameters.codecs[0].payloadType,
				// Receivers decrypt with the key mediasoup sends with.
				srtp: toPlanSrtp(ct.srtpParameters),
			});
		}
	}
	await releasePorts();
	// Write then rename, so a watcher never reads half a plan.
	writeFileSync(`${o.planOut}.tmp`, JSON.stringify(plan, null, 1));
	renameSync(`${o.planOut}.tmp`, o.planOut);
	console.log(`plan written to ${o.planOut}: ${plan.producers.length} producers, ${plan.consumers.length} consumers`);

	let stopping = false;
	const stop = async () => {
		if (stopping) return;
		stopping = true;
		if (o.stats) {
			// What mediasoup itself counted: tells a forwarder-side drop from a receiver-side one.
			for (const [what, x] of watched) {
				const st = await x.getStats();
				for (const e of st) {
					console.log(`${what} ${e.type}: packets ${e.packetCount} bytes ${e.byteCount} lost ${e.packetsLost ?? '-'} ` +
						`score ${e.score} plis ${e.pliCount} firs ${e.firCount} nacks ${e.nackCount}`);
				}
			}
		}
		worker.close();
		process.exit(0);
	};
	process.on('SIGINT', stop);
	process.on('SIGTERM', stop);
	process.stdin.on('end', stop);
	process.stdin.on('close', stop);
	process.stdin.resume();
}

main().catch((e) => {
	console.error(`mediasoup-plan: ${e.stack || e}`);
	process.exit(1);
});
