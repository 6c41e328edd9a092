-- The demo room's peer model, shared by every script that serves the same room: the room script
-- (lua/rooms/demo.lua) and the HTTP scripts whose broadcasters join it (lua/http/broadcasters.lua,
-- lua/http/whip.lua). Included with ringsfu.include("lua/lib/demo_peers.lua"); all state lives in
-- peer.data and room.data, so every include sees the same peers.
--
-- `state(peer)`: the peer's demo state (joined, transports, producers, consumers, data producers
-- and consumers); `joined_peers(room, except?)`; `peer_info(peer)` ({id, displayName, device});
-- `over_limit(room, name, map)`: why `map` is at the room's limit `name`, or nil;
-- `create_consumer(room, consumer_peer, owner, producer)`: the demo consumer flow (paused,
-- `newConsumer`, resumed when accepted) where `owner` is anything with an `id` (a peer or a
-- broadcaster); `create_data_consumer(room, consumer_peer, owner?, data_producer)`: the same for
-- data consumers (`newDataConsumer`, not paused); `track(map, obj, producer_close_event,
-- on_producer_close?)`: keeps a consumer or data consumer in `map` until it closes;
-- `observe_audio(room, producer)`: adds an audio producer to the room's audio level and active
-- speaker observers (room.data.audioLevelObserver / activeSpeakerObserver).

local lib = {}

-- Per-peer state lives in peer.data (filled lazily: requests may arrive before on_peer_open ran).
local function state(peer)
  local d = peer.data
  if d.transports == nil then
    d.joined = false
    d.transports = {}
    d.producers = {}
    d.consumers = {}
    d.dataProducers = {}
    d.dataConsumers = {}
  end
  return d
end

-- Joined peers other than `except`.
local function joined_peers(room, except)
  local out = {}
  for _, p in ipairs(room:peers()) do
    if p ~= except and p.id ~= (except and except.id) and state(p).joined then
      out[#out + 1] = p
    end
  end
  return out
end

local function peer_info(p)
  local d = state(p)
  return { id = p.id, displayName = d.displayName, device = d.device }
end

-- Per-peer limits (`limits` in lua/config.lua, or a routed room script's own `limits` table,
-- read through room.limits): how many entries `map` has against limit `name`; nil when under.
local function over_limit(room, name, map)
  local max = room.limits[name]
  if not max or max <= 0 then
    return nil
  end
  local n = 0
  for _ in pairs(map) do
    n = n + 1
  end
  if n >= max then
    return "limit " .. name .. " (" .. max .. ") reached"
  end
  return nil
end

-- Where `consumer_peer` would consume `producer` (a producer or data producer): its state and
-- its transport created with `consuming: true`; nil when it has none, did not join with
-- `caps_key` (rtpCapabilities / sctpCapabilities), or either side closed.
local function consuming_side(consumer_peer, producer, caps_key)
  local d = state(consumer_peer)
  if d[caps_key] == nil or consumer_peer.closed or producer.closed then
    return nil
  end
  for _, t in pairs(d.transports) do
    if t.appData.consuming then
      return d, t
    end
  end
  return nil
end

-- Keeps a consumer or data consumer in `map` (the peer's consumers or dataConsumers) while it
-- lives: it leaves silently with its transport, and with its producer (`producer_close_event`),
-- after which `on_producer_close(id)` (optional) tells the client.
local function track(map, obj, producer_close_event, on_producer_close)
  local id = obj.id
  map[id] = obj
  obj:on("transportclose", function()
    map[id] = nil
  end)
  obj:on(producer_close_event, function()
    map[id] = nil
    if on_producer_close then
      on_producer_close(id)
    end
  end)
end

-- Offers a new consumer or data consumer to the client with request `method`; true when the
-- client accepted it (a refusal is only logged: protoo.md §5 e).
local function offer(peer, method, body)
  local accepted, err = pcall(peer.request, peer, method, body)
  if not accepted then
    ringsfu.log("warn", method .. " refused by peer", peer.id, ":", err)
  end
  return accepted
end

-- Consumers (protoo.md §5): created paused, `newConsumer` sent, resumed when the client accepts.
local function create_consumer(room, consumer_peer, producer_peer, producer)
  local d, transport = consuming_side(consumer_peer, producer, "rtpCapabilities")
  if transport == nil then
    return
  end
  if over_limit(room, "consumersPerPeer", d.consumers) then
    ringsfu.limit_hit("consumersPerPeer", "room " .. room.id .. " peer " .. consumer_peer.id)
    return
  end
  local ok, can = pcall(room.router.canConsume, room.router, producer.id, d.rtpCapabilities)
  if not ok or not can then
    return
  end
  local replicas = room.data.consumerReplicas or 0
  for _ = 1, 1 + replicas do
    local ok2, consumer = pcall(transport.consume, transport, {
      producerId = producer.id,
      rtpCapabilities = d.rtpCapabilities,
      paused = true,
      enableRtx = true,
      appData = producer.appData,
    })
    if not ok2 then
      ringsfu.log("warn", "consume failed for peer", consumer_peer.id, ":", consumer)
      return
    end
    local cid = consumer.id
    track(d.consumers, consumer, "producerclose", function()
      consumer_peer:notify("consumerClosed", { consumerId = cid })
    end)
    consumer:on("producerpause", function()
      consumer_peer:notify("consumerPaused", { consumerId = cid })
    end)
    consumer:on("producerresume", function()
      consumer_peer:notify("consumerResumed", { consumerId = cid })
    end)
    consumer:on("score", function(score)
      consumer_peer:notify("consumerScore", { consumerId = cid, score = score })
    end)
    consumer:on("layerschange", function(layers)
      consumer_peer:notify("consumerLayersChanged", {
        consumerId = cid,
        spatialLayer = layers and layers.spatialLayer or ringsfu.null,
        temporalLayer = layers and layers.temporalLayer or ringsfu.null,
      })
    end)
    local accepted = offer(consumer_peer, "newConsumer", {
      peerId = producer_peer.id,
      producerId = producer.id,
      id = cid,
      kind = consumer.kind,
      rtpParameters = consumer.rtpParameters,
      type = consumer.type,
      appData = producer.appData,
      producerPaused = consumer.producerPaused,
    })
    -- A refused consumer stays paused.
    if accepted and not consumer.closed then
      consumer:resume()
    end
  end
end

-- Data consumers (protoo.md §6): a DataConsumer of `data_producer` for `consumer_peer`, announced
-- with `newDataConsumer` (`producer_peer` nil for the bot). Not paused: the spec has no
-- accept-then-resume rule here.
local function create_data_consumer(room, consumer_peer, producer_peer, data_producer)
  local d, transport = consuming_side(consumer_peer, data_producer, "sctpCapabilities")
  if transport == nil then
    return
  end
  local ok, dc = pcall(transport.consumeData, transport, { dataProducerId = data_producer.id })
  if not ok then
    ringsfu.log("warn", "consumeData failed for peer", consumer_peer.id, ":", dc)
    return
  end
  track(d.dataConsumers, dc, "dataproducerclose", function(id)
    consumer_peer:notify("dataConsumerClosed", { dataConsumerId = id })
  end)
  offer(consumer_peer, "newDataConsumer", {
    peerId = producer_peer and producer_peer.id or ringsfu.null,
    dataProducerId = data_producer.id,
    id = dc.id,
    sctpStreamParameters = dc.sctpStreamParameters,
    label = dc.label,
    protocol = dc.protocol,
    appData = data_producer.appData,
  })
end

-- Audio producers are watched by both observers (failures are logged, never fatal).
local function observe_audio(room, producer)
  if producer.kind ~= "audio" then
    return
  end
  for _, key in ipairs({ "audioLevelObserver", "activeSpeakerObserver" }) do
    local o = room.data[key]
    if o ~= nil and not o.closed then
      local ok, err = pcall(o.addProducer, o, { producerId = producer.id })
      if not ok then
        ringsfu.log("warn", key, "addProducer", producer.id, "failed:", err)
      end
    end
  end
end

lib.state = state
lib.joined_peers = joined_peers
lib.peer_info = peer_info
lib.over_limit = over_limit
lib.create_consumer = create_consumer
lib.create_data_consumer = create_data_consumer
lib.track = track
lib.observe_audio = observe_audio

return lib
