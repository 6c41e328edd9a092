// Page script for the ringsfu browser end-to-end test.
//
// It follows the mediasoup-demo client (app/lib/RoomClient.js) flow with the stock,
// unmodified mediasoup-client and protoo-client libraries, so that a server passing this
// test speaks the demo protocol as real demo browsers expect it (see
// shared/spec/protoo.md §3, §4, §9). Everything the runner needs is exposed on
// `window.__rs`; the page has no UI.
//
// Page URL query parameters:
//   server      WebSocket base URL of the SFU (default ws://127.0.0.1:4443)
//   roomId      room to join (required)
//   peerId      our peer id (required)
//   displayName defaults to peerId
//   forceTcp    "true" asks for TCP-only transports
//   produce     "false": no send transport, no producers
//   consume     "false": no recv transport, join without rtpCapabilities
//   datachannel "true": enable SCTP and produce the demo's 'chat' and 'bot' DataProducers
//   simulcast   "true": send the webcam as 3 VP8 simulcast streams like the demo does
//   autojoin    "false": do not start; the runner calls window.__rs.start()

import * as mediasoupClient from 'mediasoup-client';
import * as protooClient from 'protoo-client';

const params = new URLSearchParams(window.location.search);
const cfg = {
  server: params.get('server') || 'ws://127.0.0.1:4443',
  roomId: params.get('roomId'),
  peerId: params.get('peerId'),
  displayName: params.get('displayName') || params.get('peerId'),
  forceTcp: params.get('forceTcp') === 'true',
  produce: params.get('produce') !== 'false',
  consume: params.get('consume') !== 'false',
  datachannel: params.get('datachannel') === 'true',
  simulcast: params.get('simulcast') === 'true',
  // "true": ask the fake camera for 1280x720 (the quality test) instead of 640x480.
  hd: params.get('hd') === 'true',
};

// Log lines go to the console; the runner copies the console into its log file.
function log(...args) {
  console.log(`[rs ${cfg.peerId}]`, ...args);
}

// Everything observable by the runner. Plain JSON-able data only, except functions.
const state = {
  cfg,
  phase: 'init', // init → connecting → open → loaded → transports → joined → producing → closed
  error: null, // first fatal error, as a string
  connectError: null, // set on the first failed WebSocket attempt
  wsOpen: false,
  mediasoupVersion: null,
  handlerName: null,
  joined: false,
  peers: {}, // peerId → {id, displayName, device, closed}
  producers: {}, // kind → {id, kind, paused, closed}
  transports: {}, // 'send'|'recv' → {id, connectionState, iceCandidates}
  notifications: [], // every server notification, in order: {t, method, data}
  requests: [], // every server request method received, in order: {t, method}
  dataConsumers: {}, // id → {label, peerId, streamId, messages}
  closedDataConsumers: {}, // id → {label, peerId} of those closed by dataConsumerClosed
  dataProducers: {}, // label → id
  localVideo: null, // settings of the fake camera track
  localAudio: null,
};

let protoo = null;
let device = null;
let sendTransport = null;
let recvTransport = null;
const consumers = new Map(); // consumer id → {consumer, peerId, producerPaused}
const producers = new Map(); // kind → mediasoup Producer
let chatDataProducer = null;
let botDataProducer = null;
const dataConsumerObjs = new Map(); // id → mediasoup DataConsumer

// 32-bit FNV-1a of a byte array: lets the runner compare a binary message end to end.
function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i += 1) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}

function fail(what, error) {
  const text = `${what}: ${error && error.message ? error.message : String(error)}`;
  log('ERROR', text);
  if (!state.error) state.error = text;
}

function deviceInfo() {
  // Same shape as the demo's deviceInfo() (bowser based): {flag, name, version}.
  const ua = navigator.userAgent;
  const m = ua.match(/Chrom(?:e|ium)\/([0-9.]+)/);
  if (m) return { flag: 'chrome', name: 'Chrome', version: m[1] };
  const f = ua.match(/Firefox\/([0-9.]+)/);
  if (f) return { flag: 'firefox', name: 'Firefox', version: f[1] };
  return { flag: 'unknown', name: 'unknown', version: 'unknown' };
}

function wsUrl() {
  const url = new URL(cfg.server);
  url.searchParams.set('roomId', cfg.roomId);
  url.searchParams.set('peerId', cfg.peerId);
  // The demo app always appends consumerReplicas, literally "undefined" when unset.
  url.searchParams.set('consumerReplicas', 'undefined');
  return url.toString();
}

function start() {
  if (state.phase !== 'init') return;
  if (!cfg.roomId || !cfg.peerId) {
    fail('config', new Error('roomId and peerId query parameters are required'));
    return;
  }
  state.phase = 'connecting';
  const transport = new protooClient.WebSocketTransport(wsUrl());
  protoo = new protooClient.Peer(transport);

  protoo.on('open', () => {
    log('protoo open');
    state.wsOpen = true;
    state.phase = 'open';
    joinRoom().catch((error) => fail('join sequence', error));
  });
  protoo.on('failed', (currentAttempt) => {
    log('protoo failed, attempt', currentAttempt);
    if (!state.connectError) {
      state.connectError = `WebSocket connection to ${cfg.server} failed (attempt ${currentAttempt})`;
    }
  });
  protoo.on('disconnected', () => {
    // The demo closes its transports and rejoins on reconnect; the test treats it as fatal.
    log('protoo disconnected');
    fail('protoo', new Error('WebSocket disconnected'));
    closeTransports();
  });
  protoo.on('close', () => {
    log('protoo close');
    state.wsOpen = false;
    if (state.phase !== 'closed') {
      state.phase = 'closed';
    }
  });
  protoo.on('request', (request, accept, reject) => {
    state.requests.push({ t: Date.now(), method: request.method });
    handleRequest(request, accept, reject).catch((error) => {
      // Like the demo: log, never answer on a local failure.
      fail(`server request ${request.method}`, error);
    });
  });
  protoo.on('notification', (notification) => {
    state.notifications.push({ t: Date.now(), method: notification.method, data: notification.data });
    handleNotification(notification);
  });
}

async function handleRequest(request, accept, reject) {
  switch (request.method) {
    case 'newConsumer': {
      if (!cfg.consume) {
        reject(403, 'I do not want to consume');
        return;
      }
      const { peerId, producerId, id, kind, rtpParameters, type, appData, producerPaused } = request.data;
      const consumer = await recvTransport.consume({
        id,
        producerId,
        kind,
        rtpParameters,
        // Same stream grouping as the demo (lip-sync per remote peer).
        streamId: `${peerId}-${appData && appData.share ? 'share' : 'mic-webcam'}`,
        appData: { ...appData, peerId },
      });
      consumers.set(consumer.id, { consumer, peerId, type, producerPaused: !!producerPaused });
      play(consumers.get(consumer.id));
      consumer.on('transportclose', () => consumers.delete(consumer.id));
      log('consumer created', kind, id, 'from peer', peerId, 'producer', producerId, 'type', type);
      // Accept only once the consumer exists locally (the server resumes it then, §5).
      accept();
      break;
    }
    case 'newDataConsumer': {
      if (!cfg.consume || !cfg.datachannel) {
        reject(403, 'I do not want to data consume');
        return;
      }
      const { peerId, dataProducerId, id, sctpStreamParameters, label, protocol, appData } = request.data;
      const dataConsumer = await recvTransport.consumeData({
        id,
        dataProducerId,
        sctpStreamParameters,
        label,
        protocol,
        appData: { ...appData, peerId },
      });
      const entry = { id, label, peerId, streamId: sctpStreamParameters.streamId, messages: [] };
      state.dataConsumers[id] = entry;
      dataConsumerObjs.set(id, dataConsumer);
      dataConsumer.on('message', (message) => {
        entry.messages.push(typeof message === 'string'
          ? message
          : `<binary ${message.byteLength} ${fnv1a(new Uint8Array(message))}>`);
      });
      dataConsumer.on('transportclose', () => delete state.dataConsumers[id]);
      log('data consumer created', label, id, 'from peer', peerId, 'stream', sctpStreamParameters.streamId);
      accept();
      break;
    }
    default:
      log('unknown server request', request.method);
      reject(500, `unknown request.method "${request.method}"`);
  }
}

function handleNotification({ method, data }) {
  switch (method) {
    case 'mediasoup-version':
      state.mediasoupVersion = data.version;
      break;
    case 'newPeer':
      state.peers[data.id] = { id: data.id, displayName: data.displayName, device: data.device, closed: false };
      break;
    case 'peerClosed':
      if (state.peers[data.peerId]) state.peers[data.peerId].closed = true;
      else state.peers[data.peerId] = { id: data.peerId, closed: true };
      break;
    case 'consumerClosed': {
      const entry = consumers.get(data.consumerId);
      if (!entry) break;
      entry.consumer.close();
      consumers.delete(data.consumerId);
      closedConsumers.set(data.consumerId, describe(data.consumerId, entry));
      break;
    }
    case 'consumerPaused': {
      const entry = consumers.get(data.consumerId);
      if (entry) entry.producerPaused = true;
      break;
    }
    case 'consumerResumed': {
      const entry = consumers.get(data.consumerId);
      if (entry) entry.producerPaused = false;
      break;
    }
    case 'dataConsumerClosed': {
      // As the demo: close the local DataConsumer.
      const entry = state.dataConsumers[data.dataConsumerId];
      const dc = dataConsumerObjs.get(data.dataConsumerId);
      if (dc) dc.close();
      dataConsumerObjs.delete(data.dataConsumerId);
      if (entry) state.closedDataConsumers[data.dataConsumerId] = { label: entry.label, peerId: entry.peerId };
      delete state.dataConsumers[data.dataConsumerId];
      break;
    }
    // consumerScore, producerScore, consumerLayersChanged, activeSpeaker, downlinkBwe,
    // peerDisplayNameChanged: recorded in state.notifications only.
    default:
      break;
  }
}

const closedConsumers = new Map();

function describe(id, entry) {
  const c = entry.consumer;
  return {
    id,
    kind: c.kind,
    producerId: c.producerId,
    peerId: entry.peerId,
    type: entry.type,
    paused: c.paused,
    producerPaused: entry.producerPaused,
    closed: c.closed,
    trackState: c.track ? c.track.readyState : null,
  };
}

async function joinRoom() {
  const routerRtpCapabilities = await protoo.request('getRouterRtpCapabilities');
  device = new mediasoupClient.Device();
  await device.load({ routerRtpCapabilities });
  state.handlerName = device.handlerName;
  state.phase = 'loaded';
  log('device loaded, handler', device.handlerName, 'canProduce audio/video',
    device.canProduce('audio'), device.canProduce('video'));

  // mediasoup-client 3.24 no longer has `device.sctpCapabilities` (the demo app's
  // `this._mediasoupDevice.sctpCapabilities` is now undefined, so the stock demo sends none and
  // gets no data channels). We send the value older releases returned for every browser, as
  // mediasoup-based apps do since: the server sizes the SCTP association from it. Without data
  // channels nothing is sent, exactly as the demo app does with 3.24 (checked by whip.mjs's peer).
  const sctpCapabilities = cfg.datachannel ? { numStreams: { OS: 1024, MIS: 1024 } } : undefined;

  if (cfg.produce) {
    const info = await protoo.request('createWebRtcTransport', {
      forceTcp: cfg.forceTcp,
      producing: true,
      consuming: false,
      sctpCapabilities,
    });
    sendTransport = device.createSendTransport({
      id: info.id,
      iceParameters: info.iceParameters,
      iceCandidates: info.iceCandidates,
      // The demo overrides the remote DTLS role to 'auto' (browser becomes DTLS client).
      dtlsParameters: { ...info.dtlsParameters, role: 'auto' },
      sctpParameters: info.sctpParameters,
      iceServers: [],
    });
    watchTransport('send', sendTransport, info);
    sendTransport.on('connect', ({ dtlsParameters }, callback, errback) => {
      protoo.request('connectWebRtcTransport', { transportId: sendTransport.id, dtlsParameters })
        .then(callback).catch(errback);
    });
    sendTransport.on('produce', async ({ kind, rtpParameters, appData }, callback, errback) => {
      try {
        const { id } = await protoo.request('produce', { transportId: sendTransport.id, kind, rtpParameters, appData });
        callback({ id });
      } catch (error) {
        errback(error);
      }
    });
    sendTransport.on('producedata', async ({ sctpStreamParameters, label, protocol, appData }, callback, errback) => {
      try {
        const { id } = await protoo.request('produceData', {
          transportId: sendTransport.id, sctpStreamParameters, label, protocol, appData,
        });
        callback({ id });
      } catch (error) {
        errback(error);
      }
    });
  }

  if (cfg.consume) {
    const info = await protoo.request('createWebRtcTransport', {
      forceTcp: cfg.forceTcp,
      producing: false,
      consuming: true,
      sctpCapabilities,
    });
    recvTransport = device.createRecvTransport({
      id: info.id,
      iceParameters: info.iceParameters,
      iceCandidates: info.iceCandidates,
      dtlsParameters: { ...info.dtlsParameters, role: 'auto' },
      sctpParameters: info.sctpParameters,
      iceServers: [],
    });
    watchTransport('recv', recvTransport, info);
    recvTransport.on('connect', ({ dtlsParameters }, callback, errback) => {
      protoo.request('connectWebRtcTransport', { transportId: recvTransport.id, dtlsParameters })
        .then(callback).catch(errback);
    });
  }
  state.phase = 'transports';

  const { peers } = await protoo.request('join', {
    displayName: cfg.displayName,
    device: deviceInfo(),
    // 3.24 splits the old `rtpCapabilities` (deprecated alias) into recv/send capabilities: the
    // server needs what we can receive.
    rtpCapabilities: cfg.consume ? device.recvRtpCapabilities : undefined,
    sctpCapabilities: cfg.consume && cfg.datachannel ? sctpCapabilities : undefined,
  });
  for (const p of peers || []) {
    state.peers[p.id] = { id: p.id, displayName: p.displayName, device: p.device, closed: false };
  }
  state.joined = true;
  state.phase = 'joined';
  log('joined, peers:', (peers || []).map((p) => p.id).join(',') || '(none)');

  if (cfg.produce) {
    await Promise.all([enableMic(), enableWebcam()]);
    state.phase = 'producing';
    if (cfg.datachannel) {
      sendTransport.on('connectionstatechange', (s) => {
        if (s === 'connected') enableChat().catch((error) => fail('produceData chat', error));
      });
      if (sendTransport.connectionState === 'connected') {
        enableChat().catch((error) => fail('produceData chat', error));
      }
    }
  }
}

function watchTransport(name, transport, info) {
  state.transports[name] = {
    id: transport.id,
    connectionState: transport.connectionState,
    iceCandidates: info.iceCandidates,
    iceLite: info.iceParameters && info.iceParameters.iceLite,
    sctp: !!info.sctpParameters,
  };
  transport.on('connectionstatechange', (s) => {
    log(`${name} transport connectionstate`, s);
    state.transports[name].connectionState = s;
  });
}

async function enableMic() {
  if (!device.canProduce('audio')) throw new Error('device cannot produce audio');
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const track = stream.getAudioTracks()[0];
  state.localAudio = { label: track.label, settings: track.getSettings() };
  // Same codec options as the demo's enableMic().
  const producer = await sendTransport.produce({
    track,
    codecOptions: { opusStereo: true, opusDtx: true, opusFec: true, opusNack: true },
  });
  trackProducer('audio', producer);
}

async function enableWebcam() {
  if (!device.canProduce('video')) throw new Error('device cannot produce video');
  const stream = await navigator.mediaDevices.getUserMedia({
    video: cfg.hd
      ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } }
      : { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
  });
  const track = stream.getVideoTracks()[0];
  state.localVideo = { label: track.label, settings: track.getSettings() };
  log('webcam track', track.label, JSON.stringify(track.getSettings()));
  const codec = device.sendRtpCapabilities.codecs.find((c) => c.mimeType.toLowerCase() === 'video/vp8');
  if (!codec) throw new Error('desired VP8 codec not supported by the router');
  const options = {
    track,
    codec,
    codecOptions: { videoGoogleStartBitrate: 1000 },
  };
  if (cfg.simulcast) {
    // Demo default for VP8 webcam: 3 simulcast streams.
    options.encodings = [
      { scaleResolutionDownBy: 4, maxBitrate: 500000, scalabilityMode: 'L1T3' },
      { scaleResolutionDownBy: 2, maxBitrate: 1000000, scalabilityMode: 'L1T3' },
      { scaleResolutionDownBy: 1, maxBitrate: 5000000, scalabilityMode: 'L1T3' },
    ];
  }
  const producer = await sendTransport.produce(options);
  trackProducer('video', producer);
}

function trackProducer(kind, producer) {
  producers.set(kind, producer);
  state.producers[kind] = { id: producer.id, kind, paused: producer.paused, closed: false };
  producer.on('transportclose', () => {
    state.producers[kind].closed = true;
  });
  log('producing', kind, producer.id);
}

let enablingChat = null;

// The demo's enableChatDataProducer() and enableBotDataProducer(), same settings.
function enableChat() {
  if (!enablingChat) {
    enablingChat = (async () => {
      chatDataProducer = await sendTransport.produceData({
        ordered: false,
        maxRetransmits: 1,
        label: 'chat',
        priority: 'medium',
        appData: { info: 'my-chat-DataProducer' },
      });
      state.chatDataProducerId = chatDataProducer.id;
      state.dataProducers.chat = chatDataProducer.id;
      log('chat DataProducer', chatDataProducer.id);
      botDataProducer = await sendTransport.produceData({
        ordered: false,
        maxPacketLifeTime: 2000,
        label: 'bot',
        priority: 'medium',
        appData: { info: 'my-bot-DataProducer' },
      });
      state.dataProducers.bot = botDataProducer.id;
      log('bot DataProducer', botDataProducer.id);
    })();
  }
  return enablingChat;
}

// Pause our own producer, as the demo's muteMic(): local pause, then protoo pauseProducer.
async function pauseProducer(kind) {
  const producer = producers.get(kind);
  if (!producer) throw new Error(`no ${kind} producer`);
  producer.pause();
  await protoo.request('pauseProducer', { producerId: producer.id });
  state.producers[kind].paused = true;
}

async function resumeProducer(kind) {
  const producer = producers.get(kind);
  if (!producer) throw new Error(`no ${kind} producer`);
  producer.resume();
  await protoo.request('resumeProducer', { producerId: producer.id });
  state.producers[kind].paused = false;
}

function closeTransports() {
  if (sendTransport) sendTransport.close();
  if (recvTransport) recvTransport.close();
}

// Leave the room as the demo's close(): close the WebSocket, then the transports.
function close() {
  state.phase = 'closed';
  if (protoo) protoo.close();
  closeTransports();
}

function getConsumers() {
  return [...consumers.entries()].map(([id, entry]) => describe(id, entry));
}

// inbound-rtp stats of every live consumer, from consumer.getStats() (the RTCRtpReceiver's report).
async function getStats() {
  const out = [];
  for (const [id, entry] of consumers) {
    const row = { ...describe(id, entry), framesDecoded: 0, packetsReceived: 0, bytesReceived: 0, inboundRtp: 0 };
    try {
      const report = await entry.consumer.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        row.inboundRtp += 1;
        row.framesDecoded += s.framesDecoded || 0;
        row.packetsReceived += s.packetsReceived || 0;
        row.bytesReceived += s.bytesReceived || 0;
        if (s.frameWidth) row.frameWidth = s.frameWidth;
        if (s.frameHeight) row.frameHeight = s.frameHeight;
        if (typeof s.totalAudioEnergy === 'number') row.totalAudioEnergy = (row.totalAudioEnergy || 0) + s.totalAudioEnergy;
        for (const k of ['framesReceived', 'packetsLost', 'nackCount', 'pliCount', 'firCount', 'keyFramesDecoded', 'freezeCount', 'totalFreezesDuration', 'framesDropped']) {
          if (typeof s[k] === 'number') row[k] = (row[k] || 0) + s[k];
        }
      });
    } catch (error) {
      row.statsError = String(error);
    }
    out.push(row);
  }
  return out;
}

// Congestion-control view of both transports (the quality test): the selected candidate pair's
// availableOutgoingBitrate, and per simulcast encoding what the browser sends (outbound-rtp).
async function getTransportStats() {
  const out = {};
  for (const [name, t] of [['send', sendTransport], ['recv', recvTransport]]) {
    if (!t) continue;
    const row = { availableOutgoingBitrate: null, outbound: [] };
    try {
      const report = await t.getStats();
      let selected = null;
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
      });
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && (s.id === selected || (!selected && s.nominated)) && s.availableOutgoingBitrate !== undefined) {
          row.availableOutgoingBitrate = s.availableOutgoingBitrate;
        }
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          row.outbound.push({
            rid: s.rid || null,
            frameWidth: s.frameWidth || 0,
            frameHeight: s.frameHeight || 0,
            framesPerSecond: s.framesPerSecond || 0,
            bytesSent: s.bytesSent || 0,
            qualityLimitationReason: s.qualityLimitationReason || null,
            active: s.active,
          });
        }
      });
    } catch (error) {
      row.error = String(error);
    }
    out[name] = row;
  }
  return out;
}

function snapshot() {
  return JSON.parse(JSON.stringify({ ...state, consumers: getConsumers(), closedConsumers: [...closedConsumers.values()] }));
}

// WebRTC self-test that needs no server: a loopback pair of RTCPeerConnections sending the
// fake camera, to show that the browser flags allow 127.0.0.1 media. Returns gathered
// candidate addresses and whether frames were decoded.
async function selfTest() {
  const pc1 = new RTCPeerConnection({ iceServers: [] });
  const pc2 = new RTCPeerConnection({ iceServers: [] });
  const candidates = [];
  pc1.onicecandidate = (e) => {
    if (e.candidate) { candidates.push(e.candidate.candidate); pc2.addIceCandidate(e.candidate); }
  };
  pc2.onicecandidate = (e) => { if (e.candidate) pc1.addIceCandidate(e.candidate); };
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  for (const t of stream.getTracks()) pc1.addTrack(t, stream);
  await pc1.setLocalDescription(await pc1.createOffer());
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription(await pc2.createAnswer());
  await pc1.setRemoteDescription(pc2.localDescription);
  const deadline = Date.now() + 15000;
  let framesDecoded = 0;
  let audioPackets = 0;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const report = await pc2.getStats();
    framesDecoded = 0;
    audioPackets = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded = s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPackets = s.packetsReceived || 0;
    });
    if (framesDecoded > 10 && audioPackets > 10) break;
  }
  const video = stream.getVideoTracks()[0];
  const result = {
    candidates,
    framesDecoded,
    audioPackets,
    videoLabel: video.label,
    videoSettings: video.getSettings(),
    audioLabel: stream.getAudioTracks()[0].label,
    iceState: pc1.iceConnectionState,
  };
  for (const t of stream.getTracks()) t.stop();
  pc1.close();
  pc2.close();
  return result;
}

// Plays every audio consumer's track (existing and future) in an <audio> element: Chrome only
// computes received-audio stats such as totalAudioEnergy for audio that is played out.
let playAudio = false;
function play(entry) {
  if (!playAudio || entry.consumer.kind !== 'audio' || entry.element) return;
  entry.element = document.createElement('audio');
  entry.element.autoplay = true;
  entry.element.srcObject = new MediaStream([entry.consumer.track]);
  document.body.appendChild(entry.element);
  entry.element.play().catch((error) => log('audio play failed', String(error)));
}

// Renders every video consumer's track in a <video> element and records, with
// requestVideoFrameCallback, the longest gap between two presented frames (the constrained-
// downlink test's stall measure): { frames, maxGapMs, maxGapAt, lastAt } per consumer id.
const frameGaps = {};
function watchVideo() {
  for (const [id, entry] of consumers) {
    if (entry.consumer.kind !== 'video' || entry.videoElement) continue;
    const el = document.createElement('video');
    el.muted = true;
    el.autoplay = true;
    el.playsInline = true;
    el.srcObject = new MediaStream([entry.consumer.track]);
    document.body.appendChild(el);
    entry.videoElement = el;
    const g = { frames: 0, maxGapMs: 0, maxGapAt: null, lastAt: null, reset: false };
    frameGaps[id] = g;
    const onFrame = (now) => {
      if (g.reset) {
        g.reset = false;
        g.maxGapMs = 0;
        g.maxGapAt = null;
      }
      const t = performance.timeOrigin + now;
      if (g.lastAt !== null && t - g.lastAt > g.maxGapMs) {
        g.maxGapMs = t - g.lastAt;
        g.maxGapAt = t;
      }
      g.lastAt = t;
      g.frames += 1;
      el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
    el.play().catch((error) => log('video play failed', String(error)));
  }
  return Object.keys(frameGaps).length;
}

window.__rs = {
  watchVideo,
  // The frame-gap records of watchVideo(); with reset, the maximum restarts from the next frame.
  frameGaps(reset = false) {
    const out = {};
    for (const [id, g] of Object.entries(frameGaps)) {
      out[id] = { frames: g.frames, maxGapMs: g.maxGapMs, maxGapAt: g.maxGapAt, lastAt: g.lastAt };
      if (reset) g.reset = true;
    }
    return out;
  },
  playAudio() {
    playAudio = true;
    for (const entry of consumers.values()) play(entry);
  },
  state,
  start,
  snapshot,
  getConsumers,
  getStats,
  getTransportStats,
  pauseProducer,
  resumeProducer,
  close,
  selfTest,
  enableChat,
  sendChat(text) {
    if (!chatDataProducer) throw new Error('no chat DataProducer');
    chatDataProducer.send(text);
  },
  sendBot(text) {
    if (!botDataProducer) throw new Error('no bot DataProducer');
    botDataProducer.send(text);
  },
  // Sends `size` pseudo-random bytes on the chat channel; returns their length and FNV-1a.
  sendChatBinary(size) {
    if (!chatDataProducer) throw new Error('no chat DataProducer');
    const bytes = new Uint8Array(size);
    let x = 0x12345678;
    for (let i = 0; i < size; i += 1) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      bytes[i] = x >>> 24;
    }
    chatDataProducer.send(bytes.buffer);
    return { size, hash: fnv1a(bytes) };
  },
  // Closes the chat DataProducer locally (the channel closes: SCTP stream reset).
  closeChat() {
    if (!chatDataProducer) throw new Error('no chat DataProducer');
    chatDataProducer.close();
    state.dataProducers.chatClosed = true;
  },
  // Any protoo request (stats); returns the response data.
  request(method, data) {
    return protoo.request(method, data);
  },
};

if (params.get('autojoin') !== 'false') start();
