-- The seed 003 signaling server (李超's 1:1 call: join / joined / otherjoin / full / message /
-- leave / bye / leaved) as a ringsfu call script for socket.io sockets.
--
-- Hooks: on_connect(socket), events[name](socket, ...), on_disconnect(socket, reason)
-- (docs/lua-api.md, "Call scripts"). `socket:emit(event, ...)` sends a socket.io event.
--
-- Semantics, as the seed's server.js:
--   join(room)        the socket joins; with the joiner the room has n sockets:
--                     n <= capacity: `joined(room, id)` to the joiner and, when n > 1,
--                     `otherjoin(room, id)` to the others; n > capacity: the joiner is taken
--                     out again and gets `full(room, id)`.
--   message(room, d)  `message(room, d)` to every other socket in the room.
--   leave(room)       `bye(room, id)` to the others, `leaved(room, id)` to the leaver (which is
--                     then out of the room; the seed's client disconnects on `leaved`).
--   a dropped socket  counts as a leave of every room it was in: `bye` to the others.
-- The capacity is `calls.roomCapacity` of config.lua (default 2; the seed's USERCOUNT = 3
-- with its `users < USERCOUNT` test also admits 2).

local capacity = (ringsfu.config.calls and ringsfu.config.calls.roomCapacity) or 2

-- room key -> array of sockets in join order
local rooms = {}

local app = { events = {} }

local function key_of(room)
  return tostring(room)
end

local function index_in(list, socket)
  for i, s in ipairs(list) do
    if s == socket then return i end
  end
  return nil
end

local function remove(room, socket)
  local key = key_of(room)
  local list = rooms[key]
  if not list then return end
  local i = index_in(list, socket)
  if i then table.remove(list, i) end
  if #list == 0 then rooms[key] = nil end
  if socket.data.rooms then socket.data.rooms[key] = nil end
end

local function to_others(room, socket, event, ...)
  local list = rooms[key_of(room)]
  if not list then return end
  for _, s in ipairs(list) do
    if s ~= socket then s:emit(event, ...) end
  end
end

function app.on_connect(socket)
  socket.data.rooms = {}
  -- ICE servers for the page: ringsfu's TURN with fresh REST credentials (nil without TURN).
  local turn = ringsfu.turn_credentials(socket.id)
  if turn then socket:emit("iceServers", ringsfu.array({ turn })) end
  ringsfu.log("debug", "socket.io connect", socket.id, socket.remoteAddress)
end

function app.events.join(socket, room)
  local key = key_of(room)
  local list = rooms[key] or {}
  rooms[key] = list
  if not index_in(list, socket) then
    list[#list + 1] = socket
    socket.data.rooms[key] = room
  end
  local users = #list
  ringsfu.log("debug", "the user number of room", key, "is", users)
  if users <= capacity then
    socket:emit("joined", room, socket.id)
    if users > 1 then
      to_others(room, socket, "otherjoin", room, socket.id)
    end
  else
    remove(room, socket)
    socket:emit("full", room, socket.id)
  end
end

function app.events.message(socket, room, data)
  to_others(room, socket, "message", room, data)
end

function app.events.leave(socket, room)
  to_others(room, socket, "bye", room, socket.id)
  socket:emit("leaved", room, socket.id)
  remove(room, socket)
end

function app.on_disconnect(socket, reason)
  for key, room in pairs(socket.data.rooms or {}) do
    to_others(room, socket, "bye", room, socket.id)
    remove(room, socket)
  end
  ringsfu.log("debug", "socket.io disconnect", socket.id, reason)
end

return app
