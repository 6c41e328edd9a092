-- Helpers shared by SDP-speaking HTTP scripts (lua/http/whip.lua): authorization, ICE server
-- links, URL encoding, error answers. Included with ringsfu.include("lua/lib/whip_util.lua").

local util = {}

-- Raises an HTTP error answered with `status` and the text `message`.
function util.fail(status, message)
  ringsfu.error(status, message)
end

-- The WHIP/WHEP authorization hook: true when the request may proceed. The shipped policy: when
-- a token is configured (RINGSFU_WHIP_TOKEN, read into ringsfu.config.whip.token), every
-- request must carry `Authorization: Bearer <token>`; without one, everyone may publish and
-- watch. Replace this function (or the whole file) to check tokens per room, against a
-- service, ... `endpoint` is "whip" or "whep"; `headers` has lower-case names.
function util.authorize(room, endpoint, headers)
  local cfg = ringsfu.config.whip
  local token = cfg and cfg.token
  if token == nil or token == ringsfu.null or token == "" then
    return true
  end
  return headers["authorization"] == "Bearer " .. token
end

-- `Link: <stun:...>; rel="ice-server"` values (RFC 9725 §4.6) for the configured ICE servers
-- (RINGSFU_WHIP_ICE_SERVERS: comma-separated stun:/turn: URLs; TURN credentials via
-- RINGSFU_WHIP_TURN_USERNAME / RINGSFU_WHIP_TURN_CREDENTIAL).
function util.ice_links()
  local cfg = ringsfu.config.whip
  local out = ringsfu.array()
  if cfg == nil or type(cfg.iceServers) ~= "table" then
    return out
  end
  for _, url in ipairs(cfg.iceServers) do
    local link = "<" .. url .. '>; rel="ice-server"'
    if url:find("^turns?:") and type(cfg.turnUsername) == "string" then
      link = link .. '; username="' .. cfg.turnUsername .. '"; credential="'
        .. tostring(cfg.turnCredential or "") .. '"; credential-type="password"'
    end
    out[#out + 1] = link
  end
  return out
end

-- Start bitrate (kbit/s) a WHIP answer suggests to the publisher (`x-google-start-bitrate` on its
-- video codecs, as mediasoup-client's answers do): Chrome otherwise starts its estimate at 300 kbit/s
-- and needs ~30 s before it sends the top simulcast layer. Other clients ignore the parameter
-- (RFC 4566: unknown fmtp parameters are ignored). nil: none.
util.start_bitrate_kbps = 1000

-- A copy of a WHIP section's `rtpParameters` for the answer: video media codecs get
-- `x-google-start-bitrate` (util.start_bitrate_kbps). The producer keeps the original.
function util.answer_parameters(kind, rtp)
  if kind ~= "video" or util.start_bitrate_kbps == nil then
    return rtp
  end
  local codecs = ringsfu.array()
  for i, c in ipairs(rtp.codecs) do
    local mime = tostring(c.mimeType):lower()
    if mime:find("/rtx$") or mime:find("/red$") or mime:find("/ulpfec$") or mime:find("/flexfec") then
      codecs[i] = c
    else
      local params = {}
      if type(c.parameters) == "table" then
        for k, v in pairs(c.parameters) do
          params[k] = v
        end
      end
      params["x-google-start-bitrate"] = util.start_bitrate_kbps
      local copy = {}
      for k, v in pairs(c) do
        copy[k] = v
      end
      copy.parameters = params
      codecs[i] = copy
    end
  end
  local out = {}
  for k, v in pairs(rtp) do
    out[k] = v
  end
  out.codecs = codecs
  return out
end

-- Percent-encodes a path segment.
function util.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function util.is_sdp(headers, want)
  local ct = headers["content-type"] or ""
  return ct:lower():find(want, 1, true) == 1
end

return util
