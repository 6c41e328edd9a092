-- The seed 004 call relay: a plain WebSocket at /call carrying JSON frames
-- {cmd, username, msg} (msg: the JSON-encoded SDP or ICE candidate). README, "1:1 calls",
-- documents the protocol.
--
-- Client → server:
--   {cmd="join", username=U, room=R?}   (also "login"; room defaults to "default")
--   {cmd="offer"|"answer"|"candidate", username=..., msg="<json>"}   relayed to the others
--   {cmd="leave"}
-- Server → client:
--   {cmd="joined", username=U, room=R, peers={...}, iceServers={...}}   to the joiner (peers:
--                                                     usernames already in; iceServers: TURN)
--   {cmd="otherjoin", username=U, room=R}             to the others
--   {cmd="full", room=R}                               the room already has `capacity` users
--   the relayed frame, with `from` = the sender's username
--   {cmd="bye", username=U, room=R}                    the other left (or dropped)
--   {cmd="leaved", username=U, room=R}                 to the leaver
--   {cmd="error", msg="..."}                           a frame the relay cannot use

local capacity = (ringsfu.config.calls and ringsfu.config.calls.roomCapacity) or 2

local rooms = {}   -- room -> array of sessions in join order

local app = {}

local function send_error(s, msg)
  s:send({ cmd = "error", msg = msg })
end

local function others(s)
  local out = {}
  local list = rooms[s.data.room] or {}
  for _, o in ipairs(list) do
    if o ~= s then out[#out + 1] = o end
  end
  return out
end

local function leave(s, tell_self)
  local room = s.data.room
  if not room then return end
  for _, o in ipairs(others(s)) do
    o:send({ cmd = "bye", username = s.data.username, room = room })
  end
  if tell_self then
    s:send({ cmd = "leaved", username = s.data.username, room = room })
  end
  local list = rooms[room] or {}
  for i, o in ipairs(list) do
    if o == s then table.remove(list, i) break end
  end
  if #list == 0 then rooms[room] = nil end
  s.data.room = nil
end

local handlers = {}

function handlers.join(s, m)
  if type(m.username) ~= "string" or m.username == "" then
    return send_error(s, "join needs a username")
  end
  local room = type(m.room) == "string" and m.room ~= "" and m.room or "default"
  if s.data.room then leave(s, false) end
  local list = rooms[room] or {}
  for _, o in ipairs(list) do
    if o.data.username == m.username then
      return send_error(s, "username " .. m.username .. " is already in room " .. room)
    end
  end
  if #list >= capacity then
    return s:send({ cmd = "full", room = room })
  end
  local peers = ringsfu.array()
  for _, o in ipairs(list) do peers[#peers + 1] = o.data.username end
  list[#list + 1] = s
  rooms[room] = list
  s.data.room = room
  s.data.username = m.username
  -- iceServers: ringsfu's TURN with fresh REST credentials (absent without TURN).
  local turn = ringsfu.turn_credentials(m.username)
  s:send({ cmd = "joined", username = m.username, room = room, peers = peers,
           iceServers = turn and ringsfu.array({ turn }) or nil })
  for _, o in ipairs(others(s)) do
    o:send({ cmd = "otherjoin", username = m.username, room = room })
  end
end
handlers.login = handlers.join

local function relay(s, m)
  if not s.data.room then
    return send_error(s, m.cmd .. " before join")
  end
  if type(m.msg) ~= "string" then
    return send_error(s, m.cmd .. " needs msg (the JSON-encoded description or candidate)")
  end
  m.from = s.data.username
  for _, o in ipairs(others(s)) do o:send(m) end
end
handlers.offer = relay
handlers.answer = relay
handlers.candidate = relay

function handlers.leave(s, m)
  leave(s, true)
end

function app.on_message(s, text)
  local ok, m = pcall(ringsfu.json_decode, text)
  if not ok or type(m) ~= "table" or type(m.cmd) ~= "string" then
    return send_error(s, "expected a JSON object with cmd")
  end
  local h = handlers[m.cmd]
  if not h then
    return send_error(s, "unknown cmd " .. m.cmd)
  end
  h(s, m)
end

function app.on_disconnect(s, reason)
  leave(s, false)
end

return app
