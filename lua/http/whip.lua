-- WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) for ringsfu rooms, as an HTTP script.
--
-- ringsfu hands `/whip/:roomId/...` and `/whep/:roomId/...` to `handle(room, method, segments,
-- query, body, req)` on the room's worker: `segments` = {"whip"|"whep", rest...} (the room id
-- removed), `req.text` the SDP body, `req.headers` the headers (lower-case names).
--
-- A WHIP publisher is a peer of the room: it is entered in room.data.broadcasters like an HTTP
-- broadcaster (lua/http/broadcasters.lua), so protoo peers get newPeer, list it on join, and
-- consume its producers; WHEP sessions and broadcasters can consume it too. A WHEP session
-- consumes one participant's audio and video (by default the latest WHIP publisher, else the
-- latest protoo peer that produces).
--
-- Routes (every one checked by util.authorize first, 401 when it says no):
--   OPTIONS /whip/:room, /whep/:room        204 + Link: rel="ice-server" (when configured)
--   POST    /whip/:room[?name=N]            application/sdp offer → 201 answer, Location, ETag
--   POST    /whep/:room[/:peerOrProducerId] recvonly offer → 201 answer, Location, ETag
--   PATCH   /whip|whep/:room/:session       trickle-ice-sdpfrag: 204; ICE restart: 200 + sdpfrag
--   DELETE  /whip|whep/:room/:session       200, ends the session
--   GET     /whip/:room[?since=V]           the room's participants as JSON (long poll with since)

local api = {}

local util = ringsfu.include("lua/lib/whip_util.lua")
local demo = ringsfu.include("lua/lib/demo_peers.lua")

local fail = util.fail

local function sessions(room)
  room.data.whip = room.data.whip or { sessions = {}, seq = 0, publishers = {} }
  return room.data.whip
end

local function broadcasters(room)
  room.data.broadcasters = room.data.broadcasters or {}
  return room.data.broadcasters
end

-- The message of an error caught with pcall (ringsfu.error_status gives its code too).
local function message_of(err)
  local _, message = ringsfu.error_status(err)
  return message
end

local function try(status, f, ...)
  local ok, res = pcall(f, ...)
  if not ok then
    fail(status, message_of(res))
  end
  return res
end

local function new_transport(room, tag)
  local cfg = ringsfu.config
  return room.router:createWebRtcTransport({
    enableUdp = cfg.webRtc.enableUdp,
    enableTcp = cfg.webRtc.enableTcp,
    preferUdp = true,
    iceConsentTimeout = cfg.webRtcTransport.iceConsentTimeout,
    appData = { whip = tag },
  })
end

local function transport_info(t, ice)
  return {
    iceParameters = ice or t.iceParameters,
    iceCandidates = t.iceCandidates,
    dtlsParameters = t.dtlsParameters,
  }
end

-- Ends a session: closes its transport (its producers' consumers close, peers get
-- consumerClosed), and for a publisher removes the peer (peerClosed) and its hold.
local function end_session(room, s)
  local all = sessions(room)
  if all.sessions[s.id] ~= s then
    return
  end
  all.sessions[s.id] = nil
  pcall(s.transport.close, s.transport)
  if s.broadcaster ~= nil then
    local b = s.broadcaster
    if broadcasters(room)[b.id] == b then
      broadcasters(room)[b.id] = nil
      for _, p in ipairs(demo.joined_peers(room)) do
        p:notify("peerClosed", { peerId = b.id })
      end
    end
    all.publishers[b.id] = nil
  end
  s.hold:release()
end

local function watch(room, s)
  s.transport:on("icestatechange", function(state)
    if state == "disconnected" or state == "closed" then
      end_session(room, s)
    end
  end)
  s.transport:on("dtlsstatechange", function(state)
    if state == "failed" or state == "closed" then
      end_session(room, s)
    end
  end)
end

local function created(room, endpoint, s, answer)
  return {
    status = 201,
    body = answer,
    contentType = "application/sdp",
    headers = {
      Location = "/" .. endpoint .. "/" .. util.encode(room.id) .. "/" .. util.encode(s.id),
      ETag = '"' .. s.etag .. '"',
      Link = util.ice_links(),
    },
  }
end

local function need_sdp(req)
  if not util.is_sdp(req.headers, "application/sdp") then
    fail(415, "Content-Type must be application/sdp")
  end
  if req.text == nil or req.text == "" then
    fail(400, "SDP: empty body (expected an SDP offer)")
  end
end

-- POST /whip/:room -------------------------------------------------------------------------------

local function publish(room, req, query)
  need_sdp(req)
  local neg, err, unacceptable = ringsfu.sdp.publish(req.text, room.router:rtpCapabilities())
  if neg == nil then
    fail(unacceptable and 406 or 400, err)
  end
  local all = sessions(room)
  all.seq = all.seq + 1
  local t = new_transport(room, "whip")
  local id = "whip-" .. t.id:sub(1, 8)
  local s = { id = id, kind = "whip", transport = t, hold = room:hold(), etag = t.iceParameters.usernameFragment,
              remoteUfrag = neg.iceUfrag }
  local ok, e = pcall(t.connect, t, { dtlsParameters = neg.dtlsParameters })
  if not ok then
    pcall(t.close, t)
    s.hold:release()
    fail(400, message_of(e))
  end
  local name = query.name
  if type(name) ~= "string" or name == "" then
    name = "WHIP " .. all.seq
  end
  local b = {
    id = id,
    displayName = name:sub(1, 64),
    device = { flag = "broadcaster", name = "WHIP" },
    transports = { [t.id] = t },
    plain = {},
    producers = {},
    consumers = {},
    -- The session's hold keeps the room; DELETE through the broadcaster API ends it too.
    hold = { release = function() end },
  }
  s.broadcaster = b
  local answer_sections = ringsfu.array()
  local producers = {}
  for _, sec in ipairs(neg.sections) do
    local entry = { index = sec.index }
    if sec.rtpParameters ~= nil then
      local okp, producer = pcall(t.produce, t, { kind = sec.kind, rtpParameters = sec.rtpParameters,
                                                  appData = { peerId = id } })
      if okp then
        entry.rtpParameters = util.answer_parameters(sec.kind, sec.rtpParameters)
        producers[#producers + 1] = producer
      else
        ringsfu.log("warn", "WHIP", id, "section", sec.mid, "refused:", message_of(producer))
      end
    end
    answer_sections[#answer_sections + 1] = entry
  end
  if #producers == 0 then
    pcall(t.close, t)
    s.hold:release()
    fail(400, "no section of the offer could be published")
  end
  local answer = ringsfu.sdp.answer(req.text, transport_info(t), answer_sections)
  all.sessions[id] = s
  all.publishers[id] = all.seq
  broadcasters(room)[id] = b
  watch(room, s)
  local joined = demo.joined_peers(room)
  for _, p in ipairs(joined) do
    p:notify("newPeer", { id = b.id, displayName = b.displayName, device = b.device })
  end
  for _, producer in ipairs(producers) do
    local pid = producer.id
    b.producers[pid] = producer
    producer:on("transportclose", function()
      b.producers[pid] = nil
    end)
    for _, p in ipairs(joined) do
      ringsfu.spawn(demo.create_consumer, room, p, b, producer)
    end
  end
  return created(room, "whip", s, answer)
end

-- Participants ------------------------------------------------------------------------------------

-- Every participant that may produce: protoo peers (joined) and broadcasters (WHIP included),
-- each {id, displayName, kind, producers = {id → producer}, order}.
local function participants(room)
  local out = {}
  for i, p in ipairs(demo.joined_peers(room)) do
    local d = demo.state(p)
    out[#out + 1] = { id = p.id, displayName = d.displayName, kind = "protoo", producers = d.producers, order = i }
  end
  local pubs = sessions(room).publishers
  for id, b in pairs(broadcasters(room)) do
    local whip = pubs[id] ~= nil
    out[#out + 1] = { id = id, displayName = b.displayName, kind = whip and "whip" or "broadcaster",
                      producers = b.producers, order = whip and 100000 + pubs[id] or 0 }
  end
  table.sort(out, function(a, b)
    if a.order ~= b.order then
      return a.order < b.order
    end
    return a.id < b.id
  end)
  return out
end

local function listing(room)
  local peers = ringsfu.array()
  local sig = {}
  for _, p in ipairs(participants(room)) do
    local producers = ringsfu.array()
    for pid, producer in pairs(p.producers) do
      producers[#producers + 1] = { id = pid, kind = producer.kind }
    end
    table.sort(producers, function(a, b) return a.id < b.id end)
    local names = {}
    for _, pr in ipairs(producers) do
      names[#names + 1] = pr.id
    end
    sig[#sig + 1] = p.id .. "=" .. tostring(p.displayName) .. ":" .. table.concat(names, ",")
    peers[#peers + 1] = { id = p.id, displayName = p.displayName or p.id, kind = p.kind, producers = producers }
  end
  local s = table.concat(sig, ";")
  -- A short version string of the listing (djb2), so clients can long-poll for changes.
  local h = 5381
  for i = 1, #s do
    h = (h * 33 + s:byte(i)) % 4294967296
  end
  return peers, string.format("%08x", h)
end

local function list(room, query)
  local peers, version = listing(room)
  local since = query.since
  if type(since) == "string" and since == version then
    -- Long poll: answer when the listing changes, or after ~20 s.
    for _ = 1, 40 do
      ringsfu.sleep(0.5)
      if room.closed then
        break
      end
      peers, version = listing(room)
      if version ~= since then
        break
      end
    end
  end
  return { status = 200, body = { room = room.id, version = version, peers = peers } }
end

-- POST /whep/:room[/:target] ---------------------------------------------------------------------

local function pick_source(room, target)
  local all = participants(room)
  if target ~= nil then
    for _, p in ipairs(all) do
      if p.id == target then
        return p, nil
      end
      if p.producers[target] ~= nil then
        return p, target
      end
    end
    fail(404, 'no peer or producer "' .. target .. '" in room "' .. room.id .. '"')
  end
  -- The latest WHIP publisher, else the latest protoo peer, that produces something.
  for i = #all, 1, -1 do
    if next(all[i].producers) ~= nil then
      return all[i], nil
    end
  end
  fail(404, 'nobody publishes in room "' .. room.id .. '"')
end

local function subscribe(room, req, target)
  need_sdp(req)
  local caps = room.router:rtpCapabilities()
  local neg, err, unacceptable = ringsfu.sdp.subscribe(req.text, caps)
  if neg == nil then
    fail(unacceptable and 406 or 400, err)
  end
  local source, only = pick_source(room, target)
  local t = new_transport(room, "whep")
  local id = "whep-" .. t.id:sub(1, 8)
  local s = { id = id, kind = "whep", transport = t, hold = room:hold(), etag = t.iceParameters.usernameFragment,
              remoteUfrag = neg.iceUfrag, consumers = {} }
  local ok, e = pcall(t.connect, t, { dtlsParameters = neg.dtlsParameters })
  if not ok then
    pcall(t.close, t)
    s.hold:release()
    fail(400, message_of(e))
  end
  local used = {}
  local answer_sections = ringsfu.array()
  local count = 0
  for _, sec in ipairs(neg.sections) do
    local entry = { index = sec.index, direction = "sendonly" }
    if sec.rtpCapabilities ~= nil then
      for pid, producer in pairs(source.producers) do
        if not used[pid] and producer.kind == sec.kind and (only == nil or only == pid) then
          local okc, consumer = pcall(t.consume, t, {
            producerId = pid, rtpCapabilities = sec.rtpCapabilities, offerer = true, mid = sec.mid,
            enableRtx = true, paused = false,
          })
          if okc then
            used[pid] = true
            count = count + 1
            s.consumers[consumer.id] = consumer
            entry.rtpParameters = consumer.rtpParameters
            entry.msid = source.id .. " " .. consumer.id
            break
          end
          ringsfu.log("warn", "WHEP", id, "cannot consume", pid, ":", message_of(consumer))
        end
      end
    end
    answer_sections[#answer_sections + 1] = entry
  end
  if count == 0 then
    pcall(t.close, t)
    s.hold:release()
    fail(406, 'nothing of "' .. source.id .. '" can be sent with the offered codecs')
  end
  local answer = ringsfu.sdp.answer(req.text, transport_info(t), answer_sections)
  sessions(room).sessions[id] = s
  watch(room, s)
  return created(room, "whep", s, answer)
end

-- PATCH / DELETE ----------------------------------------------------------------------------------

local function get_session(room, endpoint, id)
  local s = sessions(room).sessions[id]
  if s == nil or s.kind ~= endpoint then
    fail(404, 'no ' .. endpoint .. ' session "' .. tostring(id) .. '" in room "' .. room.id .. '"')
  end
  return s
end

local function patch(room, endpoint, id, req)
  local s = get_session(room, endpoint, id)
  if not util.is_sdp(req.headers, "application/trickle-ice-sdpfrag") then
    fail(415, "Content-Type must be application/trickle-ice-sdpfrag")
  end
  local frag, err = ringsfu.sdp.parseFragment(req.text or "")
  if frag == nil then
    fail(400, err)
  end
  local match = req.headers["if-match"]
  if frag.iceUfrag ~= nil and frag.iceUfrag ~= ringsfu.null and frag.iceUfrag ~= s.remoteUfrag then
    -- ICE restart (RFC 9725 §4.4): new credentials on our side, answered in an sdpfrag.
    if match ~= nil and match ~= "*" and match ~= '"' .. s.etag .. '"' then
      fail(412, "If-Match does not match the session's ETag")
    end
    local ice = try(500, s.transport.restartIce, s.transport)
    s.remoteUfrag = frag.iceUfrag
    s.etag = ice.usernameFragment
    local mids = frag.mids
    return {
      status = 200,
      body = ringsfu.sdp.fragment(ice, s.transport.iceCandidates, mids),
      contentType = "application/trickle-ice-sdpfrag",
      headers = { ETag = '"' .. s.etag .. '"' },
    }
  end
  if match ~= nil and match ~= "*" and match ~= '"' .. s.etag .. '"' then
    fail(412, "If-Match does not match the session's ETag")
  end
  -- Trickled candidates: an ICE-lite server learns the client's addresses from its checks.
  return { status = 204 }
end

local function delete(room, endpoint, id)
  local s = get_session(room, endpoint, id)
  end_session(room, s)
  return { status = 200, body = endpoint:upper() .. " session ended" }
end

-- Entry -------------------------------------------------------------------------------------------

function api.handle(room, method, segments, query, body, req)
  local endpoint = segments[1]
  local rest = segments[2]
  if #segments > 2 then
    fail(404, "unknown path")
  end
  if method == "OPTIONS" then
    return { status = 204, headers = { Link = util.ice_links(), ["Accept-Post"] = "application/sdp" } }
  end
  if not util.authorize(room, endpoint, req.headers) then
    return { status = 401, body = "missing or wrong bearer token", headers = { ["WWW-Authenticate"] = "Bearer" } }
  end
  if room.router == nil then
    fail(500, "no media engine on this worker")
  end
  if endpoint == "whip" and method == "GET" and rest == nil then
    return list(room, query)
  elseif endpoint == "whip" and method == "POST" and rest == nil then
    return publish(room, req, query)
  elseif endpoint == "whep" and method == "POST" then
    return subscribe(room, req, rest)
  elseif method == "PATCH" and rest ~= nil then
    return patch(room, endpoint, rest, req)
  elseif method == "DELETE" and rest ~= nil then
    return delete(room, endpoint, rest)
  end
  fail(405, "method " .. method .. " not allowed here")
end

return api
