-- The mediasoup-demo room (protoo signaling), as a ringsfu room script.
--
-- Every request and notification of the stock mediasoup-demo browser app is handled here; see
-- /work/shared/spec/protoo.md for the wire shapes and docs/lua-api.md for the API used.
-- Features the engine does not have yet (network throttling) answer an error naming the missing
-- feature instead of pretending. Active speaker (`activeSpeaker`, from an AudioLevelObserver) and
-- scores (`producerScore`, `consumerScore`) are sent as mediasoup-demo sends them.

local demo = {}
demo.requests = {}
demo.notifications = {}

local MEDIASOUP_VERSION = "3.14.16"

-- The peer model shared with the broadcaster and WHIP scripts (lua/lib/demo_peers.lua).
local peers = ringsfu.include("lua/lib/demo_peers.lua")
local state = peers.state
local joined_peers = peers.joined_peers
local peer_info = peers.peer_info
local over_limit = peers.over_limit
local create_consumer = peers.create_consumer
local create_data_consumer = peers.create_data_consumer
local observe_audio = peers.observe_audio

-- Helpers -------------------------------------------------------------------------------------

local function fail(reason)
  ringsfu.error(500, reason)
end

local function not_built(what)
  ringsfu.error(500, what .. " is not built in ringsfu yet")
end

local function need_joined(peer)
  if not state(peer).joined then
    fail("Peer not yet joined")
  end
end

local function lookup(peer, what, map, id)
  local obj = id ~= nil and state(peer)[map][id] or nil
  if obj == nil then
    fail(what .. ' with id "' .. tostring(id) .. '" not found')
  end
  return obj
end

-- Answers the current request 429 when `map` is at limit `name`.
local function check_limit(room, peer, name, map)
  local why = over_limit(room, name, map)
  if why then
    ringsfu.limit_hit(name, "room " .. room.id .. " peer " .. peer.id)
    ringsfu.error(429, why)
  end
end

-- Close the whole peer when one of its transports dies (protoo.md §3.2).
local function watch_transport(peer, transport)
  transport:on("icestatechange", function(s)
    if s == "disconnected" or s == "closed" then
      ringsfu.log("info", "peer", peer.id, "transport ICE", s, ": closing the peer")
      peer:close()
    end
  end)
  transport:on("dtlsstatechange", function(s)
    if s == "failed" or s == "closed" then
      ringsfu.log("info", "peer", peer.id, "transport DTLS", s, ": closing the peer")
      peer:close()
    end
  end)
end

-- Data channels and the bot (protoo.md §6) ---------------------------------------------------

-- The room bot: a DirectTransport (max message size 512) with one DataProducer labelled `bot`.
local function create_bot(room)
  if room.router == nil then
    return nil
  end
  local transport = room.router:createDirectTransport({ maxMessageSize = 512 })
  local data_producer = transport:produceData({ label = "bot" })
  return { transport = transport, dataProducer = data_producer }
end

-- The bot consumes a peer's `bot` DataProducer and answers every text message to everyone.
local function bot_consume(room, peer, data_producer)
  local bot = room.data.bot
  if bot == nil or bot.transport.closed then
    return
  end
  local dc = bot.transport:consumeData({ dataProducerId = data_producer.id })
  dc:on("message", function(message, ppid)
    if ppid ~= 51 then
      return -- only WebRTC String messages (§6)
    end
    local text = tostring(state(peer).displayName) .. ' said me: "' .. message .. '"'
    local ok, err = pcall(bot.dataProducer.send, bot.dataProducer, text)
    if not ok then
      ringsfu.log("warn", "bot cannot answer", peer.id, ":", err)
    end
  end)
end

-- Active speaker (mediasoup-demo's Room.js) ----------------------------------------------------

-- The room's AudioLevelObserver (the loudest producer every 800 ms above -80 dBov: its peer is
-- announced as `activeSpeaker` to every joined peer, `peerId = null` on silence) and
-- ActiveSpeakerObserver (dominant speaker, logged), as mediasoup-demo creates them.
local function create_observers(room)
  if room.router == nil then
    return
  end
  local alo = room.router:createAudioLevelObserver({ maxEntries = 1, threshold = -80, interval = 800 })
  alo:on("volumes", function(volumes)
    local first = volumes[1]
    if first == nil then
      return
    end
    for _, p in ipairs(joined_peers(room)) do
      p:notify("activeSpeaker", {
        peerId = first.producer.appData.peerId or ringsfu.null,
        volume = first.volume,
      })
    end
  end)
  alo:on("silence", function()
    for _, p in ipairs(joined_peers(room)) do
      p:notify("activeSpeaker", { peerId = ringsfu.null })
    end
  end)
  local aso = room.router:createActiveSpeakerObserver()
  aso:on("dominantspeaker", function(dominant)
    local producer = dominant.producer
    ringsfu.log("debug", "dominant speaker: producer", producer and producer.id)
  end)
  room.data.audioLevelObserver = alo
  room.data.activeSpeakerObserver = aso
end

-- Lifecycle hooks -----------------------------------------------------------------------------

function demo.on_room_open(room)
  room.data.bot = create_bot(room)
  create_observers(room)
end

function demo.on_room_close(room)
  local bot = room.data.bot
  if bot ~= nil then
    pcall(bot.transport.close, bot.transport)
  end
end

function demo.on_connect(room, info)
  -- consumerReplicas is taken from the connection that creates the room (protoo.md §1.1).
  if room.data.consumerReplicas == nil then
    local n = tonumber(info.query.consumerReplicas)
    if n == nil or n ~= n or n < 0 then
      n = 0
    end
    room.data.consumerReplicas = math.floor(math.min(n, 100))
  end
  return true
end

function demo.on_peer_open(room, peer)
  state(peer)
  peer:notify("mediasoup-version", { version = MEDIASOUP_VERSION })
end

function demo.on_peer_close(room, peer, reason)
  local d = state(peer)
  if d.joined then
    for _, other in ipairs(joined_peers(room, peer)) do
      other:notify("peerClosed", { peerId = peer.id })
    end
  end
  d.joined = false
  for id, t in pairs(d.transports) do
    d.transports[id] = nil
    pcall(t.close, t)
  end
end

-- Requests --------------------------------------------------------------------------------------

local R = demo.requests

function R.getRouterRtpCapabilities(room, peer, data)
  return room.router:rtpCapabilities()
end

function R.createWebRtcTransport(room, peer, data)
  local d = state(peer)
  check_limit(room, peer, "transportsPerPeer", d.transports)
  local cfg = ringsfu.config
  local enable_udp = cfg.webRtc.enableUdp and not data.forceTcp
  local enable_tcp = cfg.webRtc.enableTcp
  if not enable_udp and not enable_tcp then
    fail("forceTcp requested but TCP is disabled on this server")
  end
  -- SCTP (data channels) only when the client sent sctpCapabilities, with its stream counts.
  local sctp = type(data.sctpCapabilities) == "table" and data.sctpCapabilities.numStreams or nil
  local transport = room.router:createWebRtcTransport({
    enableUdp = enable_udp,
    enableTcp = enable_tcp,
    preferUdp = true,
    iceConsentTimeout = cfg.webRtcTransport.iceConsentTimeout,
    initialAvailableOutgoingBitrate = cfg.webRtcTransport.initialAvailableOutgoingBitrate,
    numSctpStreams = type(sctp) == "table" and sctp or nil,
    appData = { producing = data.producing == true, consuming = data.consuming == true },
  })
  d.transports[transport.id] = transport
  -- As the demo: cap what the browser sends us (a REMB it applies to its estimate).
  if cfg.webRtcTransport.maxIncomingBitrate then
    transport:setMaxIncomingBitrate(cfg.webRtcTransport.maxIncomingBitrate)
  end
  transport:on("close", function()
    d.transports[transport.id] = nil
  end)
  -- As the demo does with the "bwe" trace (direction out): the send-side estimate.
  transport:on("bwe", function(info)
    peer:notify("downlinkBwe", {
      desiredBitrate = info.desiredBitrate,
      effectiveDesiredBitrate = info.effectiveDesiredBitrate,
      availableBitrate = info.availableBitrate,
    })
  end)
  watch_transport(peer, transport)
  return {
    id = transport.id,
    iceParameters = transport.iceParameters,
    iceCandidates = transport.iceCandidates,
    dtlsParameters = transport.dtlsParameters,
    sctpParameters = transport.sctpParameters,
  }
end

function R.connectWebRtcTransport(room, peer, data)
  local t = lookup(peer, "transport", "transports", data.transportId)
  t:connect({ dtlsParameters = data.dtlsParameters })
  return {}
end

function R.restartIce(room, peer, data)
  local t = lookup(peer, "transport", "transports", data.transportId)
  return t:restartIce()
end

function R.join(room, peer, data)
  local d = state(peer)
  if d.joined then
    fail("Peer already joined")
  end
  d.joined = true
  d.displayName = data.displayName
  d.device = data.device
  d.rtpCapabilities = data.rtpCapabilities
  d.sctpCapabilities = data.sctpCapabilities
  local others = joined_peers(room, peer)
  local peers = ringsfu.array()
  for _, other in ipairs(others) do
    peers[#peers + 1] = peer_info(other)
  end
  -- Broadcasters (HTTP API, lua/http/broadcasters.lua) are peers too.
  local broadcasters = room.data.broadcasters or {}
  for _, b in pairs(broadcasters) do
    peers[#peers + 1] = { id = b.id, displayName = b.displayName, device = b.device }
  end
  -- After the answer: consumers of everything the others produce (peers and broadcasters), data
  -- consumers of their non-bot DataProducers and of the room bot, then newPeer to them.
  ringsfu.spawn(function()
    for _, other in ipairs(others) do
      for _, producer in pairs(state(other).producers) do
        ringsfu.spawn(create_consumer, room, peer, other, producer)
      end
      for _, dp in pairs(state(other).dataProducers) do
        if dp.label ~= "bot" then
          ringsfu.spawn(create_data_consumer, room, peer, other, dp)
        end
      end
    end
    local bot = room.data.bot
    if bot ~= nil then
      ringsfu.spawn(create_data_consumer, room, peer, nil, bot.dataProducer)
    end
    for _, b in pairs(broadcasters) do
      for _, producer in pairs(b.producers) do
        ringsfu.spawn(create_consumer, room, peer, b, producer)
      end
    end
    for _, other in ipairs(others) do
      other:notify("newPeer", peer_info(peer))
    end
  end)
  return { peers = peers }
end

function R.produce(room, peer, data)
  need_joined(peer)
  local d = state(peer)
  check_limit(room, peer, "producersPerPeer", d.producers)
  local t = lookup(peer, "transport", "transports", data.transportId)
  local app_data = type(data.appData) == "table" and data.appData or {}
  app_data.peerId = peer.id
  local producer = t:produce({
    kind = data.kind,
    rtpParameters = data.rtpParameters,
    paused = data.paused == true,
    appData = app_data,
  })
  local pid = producer.id
  d.producers[pid] = producer
  producer:on("transportclose", function()
    d.producers[pid] = nil
  end)
  producer:on("score", function(score)
    peer:notify("producerScore", { producerId = pid, score = score })
  end)
  observe_audio(room, producer)
  for _, other in ipairs(joined_peers(room, peer)) do
    ringsfu.spawn(create_consumer, room, other, peer, producer)
  end
  return { id = pid }
end

function R.closeProducer(room, peer, data)
  need_joined(peer)
  local p = lookup(peer, "producer", "producers", data.producerId)
  state(peer).producers[p.id] = nil
  p:close()
  return {}
end

function R.pauseProducer(room, peer, data)
  need_joined(peer)
  lookup(peer, "producer", "producers", data.producerId):pause()
  return {}
end

function R.resumeProducer(room, peer, data)
  need_joined(peer)
  lookup(peer, "producer", "producers", data.producerId):resume()
  return {}
end

function R.pauseConsumer(room, peer, data)
  need_joined(peer)
  lookup(peer, "consumer", "consumers", data.consumerId):pause()
  return {}
end

function R.resumeConsumer(room, peer, data)
  need_joined(peer)
  lookup(peer, "consumer", "consumers", data.consumerId):resume()
  return {}
end

function R.setConsumerPreferredLayers(room, peer, data)
  need_joined(peer)
  local c = lookup(peer, "consumer", "consumers", data.consumerId)
  c:setPreferredLayers({ spatialLayer = data.spatialLayer, temporalLayer = data.temporalLayer })
  return {}
end

function R.setConsumerPriority(room, peer, data)
  need_joined(peer)
  local c = lookup(peer, "consumer", "consumers", data.consumerId)
  c:setPriority(data.priority)
  return {}
end

-- ringsfu extension (not in mediasoup-demo): caps the send-side estimate of one of the peer's own
-- transports (transport:setMaxOutgoingBitrate; 0 removes the cap), so a client can ask for less
-- than its link carries; tests/browser/layers.mjs uses it to share a constrained transport.
function R.setTransportMaxOutgoingBitrate(room, peer, data)
  need_joined(peer)
  local t = lookup(peer, "transport", "transports", data.transportId)
  t:setMaxOutgoingBitrate(tonumber(data.bitrate) or 0)
  return {}
end

function R.requestConsumerKeyFrame(room, peer, data)
  need_joined(peer)
  lookup(peer, "consumer", "consumers", data.consumerId):requestKeyFrame()
  return {}
end

function R.changeDisplayName(room, peer, data)
  need_joined(peer)
  local d = state(peer)
  local old = d.displayName
  d.displayName = data.displayName
  for _, other in ipairs(joined_peers(room, peer)) do
    other:notify("peerDisplayNameChanged", {
      peerId = peer.id,
      displayName = data.displayName,
      oldDisplayName = old,
    })
  end
  return {}
end

function R.getTransportStats(room, peer, data)
  return lookup(peer, "transport", "transports", data.transportId):getStats()
end

function R.getProducerStats(room, peer, data)
  return lookup(peer, "producer", "producers", data.producerId):getStats()
end

function R.getConsumerStats(room, peer, data)
  return lookup(peer, "consumer", "consumers", data.consumerId):getStats()
end

function R.produceData(room, peer, data)
  need_joined(peer)
  local d = state(peer)
  local t = lookup(peer, "transport", "transports", data.transportId)
  local dp = t:produceData({
    sctpStreamParameters = data.sctpStreamParameters,
    label = data.label,
    protocol = data.protocol,
    appData = type(data.appData) == "table" and data.appData or {},
  })
  local id = dp.id
  d.dataProducers[id] = dp
  dp:on("transportclose", function()
    d.dataProducers[id] = nil
  end)
  -- The browser closed the channel (SCTP stream reset): the engine closed the DataProducer and
  -- its DataConsumers report `dataproducerclose`.
  dp:on("peerclose", function()
    d.dataProducers[id] = nil
  end)
  -- After the answer, by label (§3.13): chat fans out, bot goes to the room bot.
  if dp.label == "chat" then
    for _, other in ipairs(joined_peers(room, peer)) do
      ringsfu.spawn(create_data_consumer, room, other, peer, dp)
    end
  elseif dp.label == "bot" then
    ringsfu.spawn(bot_consume, room, peer, dp)
  end
  return { id = id }
end

function R.getDataProducerStats(room, peer, data)
  return lookup(peer, "dataProducer", "dataProducers", data.dataProducerId):getStats()
end

function R.getDataConsumerStats(room, peer, data)
  return lookup(peer, "dataConsumer", "dataConsumers", data.dataConsumerId):getStats()
end

function R.applyNetworkThrottle()
  ringsfu.error(403, "operation NOT allowed: network throttling is not built in ringsfu")
end

function R.resetNetworkThrottle()
  ringsfu.error(403, "operation NOT allowed: network throttling is not built in ringsfu")
end

-- The shared peer model (lua/lib/demo_peers.lua), kept here under its old name for scripts that
-- include this room to reach it.
demo.lib = peers

return demo
