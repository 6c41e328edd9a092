-- A 1:1 call room: the mediasoup-demo room, limited to two peers.
-- A third peer is refused at connection time with HTTP 403 and a clear reason.
-- A peer reconnecting with the same peerId is not counted twice (it replaces its old self).

local demo = ringsfu.include("lua/rooms/demo.lua")

local room_script = setmetatable({}, { __index = demo })

local MAX_PEERS = 2

function room_script.on_connect(room, info)
  if room:peer(info.peerId) == nil and #room:peers() >= MAX_PEERS then
    return false, 403, "this is a 1:1 room: it already has " .. MAX_PEERS .. " peers"
  end
  if demo.on_connect then
    return demo.on_connect(room, info)
  end
  return true
end

return room_script
