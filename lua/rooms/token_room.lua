-- A room that admits only holders of a valid token for it: the mediasoup-demo room, gated by a
-- JSON Web Token. lua/config.lua routes room ids starting with "secure-" here.
--
-- The token is a JWT signed with the key of `security.tokenKey` (RINGSFU_TOKEN_KEY) and the
-- algorithm of `security.tokenAlg` (HS256 by default: the key is the shared secret; ES256/RS256:
-- the key is the PEM public key). Its claims must have `exp` (in the future) and `room` (this
-- room's id; "*" for every room). A protoo peer sends it as the `token` query parameter of the
-- WebSocket URL; a broadcaster (HTTP API) as `Authorization: Bearer <token>` or `?token=`.
--
--   no token, a bad signature, an expired token → 401
--   a valid token for another room              → 403
--   no key configured                            → 503 (the room refuses everyone)

local demo = ringsfu.include("lua/rooms/demo.lua")

local room_script = setmetatable({}, { __index = demo })

local function check(room, token)
  local cfg = ringsfu.config.tokens or {}
  if not cfg.key then
    return false, 503, "this room needs security.tokenKey to be configured"
  end
  if not token or token == "" then
    return false, 401, "a token is required for this room"
  end
  local claims, why = ringsfu.jwt.verify(token, cfg.key, { alg = cfg.alg or "HS256" })
  if not claims then
    return false, 401, "token refused: " .. why
  end
  if claims.room ~= room.id and claims.room ~= "*" then
    return false, 403, "the token is not for room " .. room.id
  end
  return true, claims
end

-- protoo peers: ?token=... on the WebSocket URL.
function room_script.on_connect(room, info)
  local ok, status, reason = check(room, info.query.token)
  if not ok then
    ringsfu.log("info", "room", room.id, "peer", info.peerId, "refused:", status, reason)
    return false, status, reason
  end
  if demo.on_connect then
    return demo.on_connect(room, info)
  end
  return true
end

-- Broadcasters (the HTTP API): every request carries the token.
function room_script.on_http(room, info)
  local token = info.query.token
  local auth = info.authorization
  if auth and auth:sub(1, 7):lower() == "bearer " then
    token = auth:sub(8)
  end
  local ok, status, reason = check(room, token)
  if not ok then
    return false, status, reason
  end
  return true
end

return room_script
