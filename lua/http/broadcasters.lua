-- The mediasoup-demo broadcaster REST API, as a ringsfu HTTP API script.
--
-- ringsfu hands every `/rooms/:roomId/...` HTTP request to `handle(room, method, segments,
-- query, body)` on the room's worker, in the same Lua state as the room's protoo peers
-- (docs/lua-api.md, "HTTP API scripts"). `segments` are the path segments after
-- `/rooms/:roomId`. Add or change routes in `routes` below.
--
-- A broadcaster (ffmpeg, GStreamer, a libmediasoupclient app) is a peer driven over HTTP: it
-- appears to protoo peers as a peer (`join` lists it, `newPeer`/`peerClosed`), and its producers
-- are consumed by every joined peer with the demo room's consumer flow. Broadcasters live in
-- `room.data.broadcasters` (lua/rooms/demo.lua reads it on `join`); each holds the room open
-- (`room:hold()`) until it is deleted.
--
-- Errors are answered as mediasoup-demo does: a text body "<ErrorName>: <message>". Statuses:
-- 400 TypeError for a malformed request, 404 for an unknown broadcaster, transport or producer,
-- 409 for a request the current state refuses, 501 for what ringsfu has not built (data
-- channels), 500 for the rest. (mediasoup-demo answers 500 where we answer 404/409/501.)

local api = {}

local demo = ringsfu.include("lua/lib/demo_peers.lua")

-- Errors ----------------------------------------------------------------------------------------

local function throw(status, name, message)
  ringsfu.error(status, name .. ": " .. message)
end

local function type_error(message)
  throw(400, "TypeError", message)
end

local function not_found(message)
  throw(404, "Error", message)
end

local function conflict(message)
  throw(409, "Error", message)
end

-- Calls an engine method; its failure is answered with the status code the error carries
-- (ringsfu.error_status: 400 bad argument, 404 unknown object, 409 refused state, 501 not
-- built, 500 the rest), a 400 named TypeError as mediasoup-demo names it.
local function engine(f, ...)
  local ok, res = pcall(f, ...)
  if ok then
    return res
  end
  local status, msg = ringsfu.error_status(res)
  throw(status, status == 400 and "TypeError" or "Error", msg)
end

local function non_empty_string(v)
  return type(v) == "string" and v ~= ""
end

local function absent(v)
  return v == nil or v == ringsfu.null
end

-- State -----------------------------------------------------------------------------------------

local function broadcasters(room)
  if room.data.broadcasters == nil then
    room.data.broadcasters = {}
  end
  return room.data.broadcasters
end

local function get_broadcaster(room, id)
  local b = broadcasters(room)[id]
  if b == nil then
    not_found('broadcaster with id "' .. id .. '" does not exist')
  end
  return b
end

local function get_transport(b, id)
  local t = b.transports[id]
  if t == nil then
    not_found('transport with id "' .. id .. '" does not exist')
  end
  return t
end

-- Every live producer of the room (protoo peers' and broadcasters'), by id.
local function find_producer(room, id)
  for _, p in ipairs(room:peers()) do
    local producer = demo.state(p).producers[id]
    if producer ~= nil then
      return producer
    end
  end
  for _, b in pairs(broadcasters(room)) do
    if b.producers[id] ~= nil then
      return b.producers[id]
    end
  end
  return nil
end

local function ids(map)
  local out = ringsfu.array()
  for id in pairs(map) do
    out[#out + 1] = id
  end
  table.sort(out)
  return out
end

-- Handlers --------------------------------------------------------------------------------------

local function router_capabilities(room)
  if room.router == nil then
    throw(500, "Error", "no media engine on this worker")
  end
  return { status = 200, body = room.router:rtpCapabilities() }
end

local function create_broadcaster(room, body)
  if not non_empty_string(body.id) then
    type_error("missing body.id")
  end
  if not non_empty_string(body.displayName) then
    type_error("missing body.displayName")
  end
  local device = body.device
  if absent(device) then
    device = {}
  elseif type(device) ~= "table" then
    type_error("wrong body.device")
  end
  if not non_empty_string(device.name) then
    type_error("missing body.device.name")
  end
  local version = device.version
  if type(version) ~= "string" and type(version) ~= "number" then
    version = nil
  end
  local caps = body.rtpCapabilities
  if absent(caps) then
    caps = nil
  elseif type(caps) ~= "table" then
    type_error("wrong body.rtpCapabilities")
  end
  local all = broadcasters(room)
  if all[body.id] ~= nil then
    conflict('broadcaster with id "' .. body.id .. '" already exists')
  end
  if room:peer(body.id) ~= nil then
    conflict('a peer with id "' .. body.id .. '" is connected')
  end

  local b = {
    id = body.id,
    displayName = body.displayName,
    device = { flag = "broadcaster", name = device.name, version = version },
    rtpCapabilities = caps,
    transports = {},
    -- Plain transports' options by transport id (see connect_plain_transport).
    plain = {},
    producers = {},
    consumers = {},
    hold = room:hold(),
  }
  all[b.id] = b

  local peers = ringsfu.array()
  for _, p in ipairs(demo.joined_peers(room)) do
    p:notify("newPeer", { id = b.id, displayName = b.displayName, device = b.device })
    -- Only with rtpCapabilities: the producers the broadcaster can consume.
    if caps ~= nil then
      local producers = ringsfu.array()
      for pid, producer in pairs(demo.state(p).producers) do
        if room.router:canConsume(pid, caps) then
          producers[#producers + 1] = { id = pid, kind = producer.kind }
        end
      end
      local info = demo.peer_info(p)
      info.producers = producers
      peers[#peers + 1] = info
    end
  end
  return { status = 200, body = { peers = peers } }
end

local function delete_broadcaster(room, id)
  local b = get_broadcaster(room, id)
  broadcasters(room)[id] = nil
  -- Closing the transports closes the producers: peers get consumerClosed for each.
  for tid, t in pairs(b.transports) do
    b.transports[tid] = nil
    pcall(t.close, t)
  end
  for _, p in ipairs(demo.joined_peers(room)) do
    p:notify("peerClosed", { peerId = id })
  end
  -- Last: the room may close now if nobody else is in it.
  b.hold:release()
  return { status = 200, body = "broadcaster deleted" }
end

local function show_broadcaster(room, id)
  local b = get_broadcaster(room, id)
  local producers = ringsfu.array()
  for pid, p in pairs(b.producers) do
    producers[#producers + 1] = { id = pid, kind = p.kind }
  end
  return {
    status = 200,
    body = {
      id = b.id,
      displayName = b.displayName,
      device = b.device,
      transports = ids(b.transports),
      producers = producers,
      consumers = ids(b.consumers),
    },
  }
end

local function create_transport(room, b, body)
  local kind = body.type
  for _, key in ipairs({ "rtcpMux", "comedia", "enableSrtp" }) do
    if not absent(body[key]) and type(body[key]) ~= "boolean" then
      type_error("wrong body." .. key)
    end
  end
  if not absent(body.srtpCryptoSuite) and not non_empty_string(body.srtpCryptoSuite) then
    type_error("wrong body.srtpCryptoSuite")
  end
  local cfg = ringsfu.config
  local t
  local plain
  if kind == "plain" then
    -- What plain/connect needs to know to validate its body (the engine object does not say).
    plain = {
      rtcpMux = body.rtcpMux == true,
      comedia = body.comedia ~= false,
      srtp = body.enableSrtp == true,
      connected = false,
    }
    local suite = nil
    if plain.srtp and not absent(body.srtpCryptoSuite) then
      suite = body.srtpCryptoSuite
    end
    t = engine(room.router.createPlainTransport, room.router, {
      rtcpMux = plain.rtcpMux,
      comedia = plain.comedia,
      enableSrtp = plain.srtp,
      srtpCryptoSuite = suite,
      appData = { broadcasterId = b.id },
    })
  elseif kind == "webrtc" then
    -- sctpCapabilities is accepted; SCTP (data channels) is not built, so no sctpParameters.
    t = engine(room.router.createWebRtcTransport, room.router, {
      enableUdp = cfg.webRtc.enableUdp,
      enableTcp = cfg.webRtc.enableTcp,
      preferUdp = true,
      iceConsentTimeout = cfg.webRtcTransport.iceConsentTimeout,
      appData = { broadcasterId = b.id },
    })
  else
    type_error("invalid type")
  end
  -- The broadcaster may have been deleted while the transport was made: do not leave it.
  if broadcasters(room)[b.id] ~= b then
    pcall(t.close, t)
    not_found('broadcaster with id "' .. b.id .. '" does not exist')
  end
  local tid = t.id
  b.transports[tid] = t
  if plain ~= nil then
    b.plain[tid] = plain
  end
  t:on("close", function()
    b.transports[tid] = nil
    b.plain[tid] = nil
  end)
  if kind == "plain" then
    local tuple = t.tuple
    local out = { id = tid, ip = tuple.localIp, port = tuple.localPort }
    local rtcp = t.rtcpTuple
    if rtcp ~= nil then
      out.rtcpPort = rtcp.localPort
    end
    -- With SRTP: the key this transport encrypts with (what the remote decrypts with).
    if t.srtpParameters ~= nil then
      out.srtpParameters = t.srtpParameters
    end
    return { status = 200, body = out }
  end
  return {
    status = 200,
    body = {
      id = tid,
      iceParameters = t.iceParameters,
      iceCandidates = t.iceCandidates,
      dtlsParameters = t.dtlsParameters,
      sctpParameters = t.sctpParameters,
    },
  }
end

local connect_plain_transport

-- `connect` of any transport, as mediasoup's `transport.connect()`: `{dtlsParameters}` for a
-- WebRtcTransport, `{ip, port, rtcpPort?, srtpParameters?}` for a PlainTransport.
local function connect_transport(b, tid, body)
  local t = get_transport(b, tid)
  if t.iceParameters == nil then
    return connect_plain_transport(b, tid, body)
  end
  if type(body.dtlsParameters) ~= "table" then
    type_error("missing body.dtlsParameters")
  end
  engine(t.connect, t, { dtlsParameters = body.dtlsParameters })
  return { status = 200 }
end

local function port_number(v)
  return type(v) == "number" and v == math.floor(v) and v >= 1 and v <= 65535
end

-- `connect({ip, port, rtcpPort?, srtpParameters?})` of a plain transport (a superset of
-- mediasoup-demo's API, as its later versions have): the remote address of a non-comedia
-- transport and, with SRTP, the key the remote encrypts with.
function connect_plain_transport(b, tid, body)
  local t = get_transport(b, tid)
  local plain = b.plain[tid]
  if plain == nil then
    conflict('transport with id "' .. tid .. '" is not a PlainTransport')
  end
  if plain.connected then
    conflict('transport with id "' .. tid .. '" is already connected')
  end
  local params = {}
  -- comedia learns the remote address from the first packet: ip/port are optional and ignored.
  if not plain.comedia or not absent(body.ip) then
    if not non_empty_string(body.ip) then
      type_error(absent(body.ip) and "missing body.ip" or "wrong body.ip")
    end
    params.ip = body.ip
  end
  if not plain.comedia or not absent(body.port) then
    if not port_number(body.port) then
      type_error(absent(body.port) and "missing body.port" or "wrong body.port (1..65535)")
    end
    params.port = body.port
  end
  if not absent(body.rtcpPort) then
    if not port_number(body.rtcpPort) then
      type_error("wrong body.rtcpPort (1..65535)")
    end
    params.rtcpPort = body.rtcpPort
  elseif not plain.comedia and not plain.rtcpMux then
    type_error("missing body.rtcpPort (the transport has no rtcpMux)")
  end
  local sp = body.srtpParameters
  if plain.srtp then
    if absent(sp) then
      type_error("missing body.srtpParameters (SRTP is enabled on this transport)")
    end
    if type(sp) ~= "table" then
      type_error("wrong body.srtpParameters")
    end
    if not non_empty_string(sp.cryptoSuite) then
      type_error("missing body.srtpParameters.cryptoSuite")
    end
    if not non_empty_string(sp.keyBase64) then
      type_error("missing body.srtpParameters.keyBase64")
    end
    params.srtpParameters = { cryptoSuite = sp.cryptoSuite, keyBase64 = sp.keyBase64 }
  elseif not absent(sp) then
    type_error("body.srtpParameters given but SRTP is not enabled on this transport")
  end
  engine(t.connect, t, params)
  plain.connected = true
  return { status = 200 }
end

local function create_producer(room, b, tid, body)
  local t = get_transport(b, tid)
  if body.kind ~= "audio" and body.kind ~= "video" then
    type_error("wrong body.kind (audio or video)")
  end
  if type(body.rtpParameters) ~= "table" then
    type_error("missing body.rtpParameters")
  end
  local producer = engine(t.produce, t, {
    kind = body.kind,
    rtpParameters = body.rtpParameters,
    -- peerId: the room's audio level observer names the broadcaster in `activeSpeaker`.
    appData = { peerId = b.id },
  })
  local pid = producer.id
  b.producers[pid] = producer
  producer:on("transportclose", function()
    b.producers[pid] = nil
  end)
  demo.observe_audio(room, producer)
  for _, p in ipairs(demo.joined_peers(room)) do
    ringsfu.spawn(demo.create_consumer, room, p, b, producer)
  end
  return { status = 200, body = { id = pid } }
end

local function create_consumer(room, b, tid, query)
  local t = get_transport(b, tid)
  local pid = query.producerId
  if not non_empty_string(pid) then
    type_error("missing producerId (query parameter)")
  end
  if b.rtpCapabilities == nil then
    conflict("broadcaster does not have rtpCapabilities")
  end
  if find_producer(room, pid) == nil then
    not_found('producer with id "' .. pid .. '" does not exist')
  end
  local consumer = engine(t.consume, t, {
    producerId = pid,
    rtpCapabilities = b.rtpCapabilities,
    paused = false,
    enableRtx = true,
  })
  local cid = consumer.id
  -- Removed silently when it closes: the broadcaster is not told (as in mediasoup-demo).
  demo.track(b.consumers, consumer, "producerclose")
  return {
    status = 200,
    body = {
      id = cid,
      producerId = pid,
      kind = consumer.kind,
      rtpParameters = consumer.rtpParameters,
      type = consumer.type,
    },
  }
end

local function data_channels(b, tid, what)
  get_transport(b, tid)
  throw(501, "Error", what .. ": data channels (SCTP) are not built in ringsfu yet")
end

-- Routing ---------------------------------------------------------------------------------------

-- Each route: method, path pattern (segments after /rooms/:roomId; ":x" captures), handler.
local routes = {
  { "GET", {}, function(room) return router_capabilities(room) end },
  { "POST", { "broadcasters" }, function(room, _, body) return create_broadcaster(room, body) end },
  { "GET", { "broadcasters", ":b" }, function(room, p) return show_broadcaster(room, p.b) end },
  { "DELETE", { "broadcasters", ":b" }, function(room, p) return delete_broadcaster(room, p.b) end },
  {
    "POST", { "broadcasters", ":b", "transports" },
    function(room, p, body) return create_transport(room, get_broadcaster(room, p.b), body) end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "connect" },
    function(room, p, body) return connect_transport(get_broadcaster(room, p.b), p.t, body) end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "plain", "connect" },
    function(room, p, body)
      return connect_plain_transport(get_broadcaster(room, p.b), p.t, body)
    end,
  },
  {
    -- ringsfu extension: the transport's stats (packet counters, srtpDrops), as getTransportStats.
    "GET", { "broadcasters", ":b", "transports", ":t", "stats" },
    function(room, p)
      local t = get_transport(get_broadcaster(room, p.b), p.t)
      return { status = 200, body = engine(t.getStats, t) }
    end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "producers" },
    function(room, p, body)
      return create_producer(room, get_broadcaster(room, p.b), p.t, body)
    end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "consume" },
    function(room, p, _, query)
      return create_consumer(room, get_broadcaster(room, p.b), p.t, query)
    end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "consume", "data" },
    function(room, p)
      return data_channels(get_broadcaster(room, p.b), p.t, "consume/data")
    end,
  },
  {
    "POST", { "broadcasters", ":b", "transports", ":t", "produce", "data" },
    function(room, p)
      return data_channels(get_broadcaster(room, p.b), p.t, "produce/data")
    end,
  },
}
api.routes = routes

local function match(pattern, segments)
  if #pattern ~= #segments then
    return nil
  end
  local params = {}
  for i, want in ipairs(pattern) do
    if want:sub(1, 1) == ":" then
      params[want:sub(2)] = segments[i]
    elseif want ~= segments[i] then
      return nil
    end
  end
  return params
end

function api.handle(room, method, segments, query, body)
  if absent(body) then
    body = {}
  elseif type(body) ~= "table" then
    type_error("the body must be a JSON object")
  end
  local path_known = false
  for _, r in ipairs(routes) do
    local params = match(r[2], segments)
    if params ~= nil then
      path_known = true
      if r[1] == method then
        return r[3](room, params, body, query)
      end
    end
  end
  local path = "/rooms/" .. room.id
  for _, s in ipairs(segments) do
    path = path .. "/" .. s
  end
  if path_known then
    throw(405, "Error", "method " .. method .. " not allowed on " .. path)
  end
  throw(404, "Error", "Cannot " .. method .. " " .. path)
end

return api
