-- ringsfu configuration, in the spirit of mediasoup-demo's config.js.
--
-- This file is evaluated once at start (and is embedded in the binary as the default).
-- It returns one table; unknown keys are refused so typos are caught at start.
-- Environment variables override the important keys (see docs/lua-api.md):
--   RINGSFU_LISTEN_IP, RINGSFU_ANNOUNCED_ADDRESS, RINGSFU_HTTP_PORT, RINGSFU_RTC_PORT,
--   RINGSFU_WORKERS, RINGSFU_IO_BACKEND, RINGSFU_TLS_CERT, RINGSFU_TLS_KEY, RINGSFU_LOG_LEVEL.

return {
  -- error | warn | info | debug | trace
  logLevel = "info",

  -- Number of worker threads (one per core, each pinned); 0 = one per available core.
  workers = 0,

  -- "epoll" or "io_uring" (falls back to epoll where io_uring is not available).
  ioBackend = "epoll",

  -- Signaling: HTTP + protoo WebSocket on one port; https/wss when tls.cert and tls.key are set.
  http = {
    listenIp = "127.0.0.1",
    port = 4443,
    tls = {
      -- cert = "/path/to/fullchain.pem",
      -- key = "/path/to/privkey.pem",
    },
    -- Directory of static files served for unmatched GET requests (e.g. the demo web app).
    -- staticDir = "/path/to/mediasoup-demo/app/dist",
  },

  -- Media: WebRTC over one shared UDP port and one shared TCP port per worker
  -- (worker i uses port + i), like mediasoup's WebRtcServer.
  webRtc = {
    listenIp = "127.0.0.1",
    announcedAddress = "127.0.0.1",
    port = 44444,
    enableUdp = true,
    enableTcp = true,
  },

  -- Ports of PlainTransports (RTP in/out of ffmpeg, GStreamer, ...).
  rtcPortRange = { min = 40000, max = 49999 },

  -- Router options: the codecs every room's router offers (mediasoup-demo's list).
  router = {
    mediaCodecs = {
      { kind = "audio", mimeType = "audio/opus", clockRate = 48000, channels = 2 },
      {
        kind = "video", mimeType = "video/VP8", clockRate = 90000,
        parameters = { ["x-google-start-bitrate"] = 1000 },
      },
      {
        kind = "video", mimeType = "video/VP9", clockRate = 90000,
        parameters = { ["profile-id"] = 2, ["x-google-start-bitrate"] = 1000 },
      },
      {
        kind = "video", mimeType = "video/h264", clockRate = 90000,
        parameters = {
          ["packetization-mode"] = 1,
          ["profile-level-id"] = "4d0032",
          ["level-asymmetry-allowed"] = 1,
          ["x-google-start-bitrate"] = 1000,
        },
      },
      {
        kind = "video", mimeType = "video/h264", clockRate = 90000,
        parameters = {
          ["packetization-mode"] = 1,
          ["profile-level-id"] = "42e01f",
          ["level-asymmetry-allowed"] = 1,
          ["x-google-start-bitrate"] = 1000,
        },
      },
    },
  },

  -- WebRtcTransport options given to room scripts (ringsfu.config.webRtcTransport).
  webRtcTransport = {
    -- Where each transport's send-side estimate (what the consumers' layers are fitted under)
    -- starts, bits/s; demo.lua passes it to createWebRtcTransport. minimumAvailableOutgoingBitrate
    -- is accepted for config.js compatibility and not used.
    initialAvailableOutgoingBitrate = 1000000,
    minimumAvailableOutgoingBitrate = 600000,
    maxSctpMessageSize = 262144,
    -- Sent to each browser as a REMB every 1.5 s (demo.lua calls transport:setMaxIncomingBitrate),
    -- which Chrome applies as a hard cap on its send estimate. mediasoup-demo uses 1500000; that
    -- cap keeps a 720p 3-layer simulcast publisher from ever sending its 1280-wide layer
    -- (measured: estimate pinned at 1.5 Mbps, top layer off), so the default here is 10 Mbps.
    maxIncomingBitrate = 10000000,
    -- Seconds without ICE consent before the transport is considered disconnected.
    iceConsentTimeout = 20,
  },

  -- Which room script serves which room: the first entry whose Lua pattern matches the roomId.
  -- Relative paths are looked up from the working directory, then next to this file's parent
  -- directory, then among the scripts embedded in the binary.
  rooms = {
    { match = "^one2one%-", script = "lua/rooms/one_to_one.lua" },
    { match = "^secure%-", script = "lua/rooms/token_room.lua" },
    { match = ".*", script = "lua/rooms/demo.lua" },
  },

  -- Limits of room scripts.
  lua = {
    -- VM instructions one handler invocation may run (across its yields).
    instructionLimit = 10000000,
    -- Memory cap of each worker's Lua state.
    memoryLimitMb = 64,
  },

  -- The HTTP API under /rooms/:roomId/... (the mediasoup-demo broadcaster REST API). Every
  -- request is handed to this script's handle(room, method, segments, query, body) on the
  -- room's worker (see docs/lua-api.md). Leave `script` out to serve only GET /rooms/:roomId.
  httpApi = {
    script = "lua/http/broadcasters.lua",
    -- true: a request for a room that does not exist creates it (mediasoup-demo today);
    -- false: it is answered 404 'room with id "<id>" not found' (older demo versions).
    createRooms = true,
  },

  -- The 1:1 call system (README, "1:1 calls"): socket.io and plain WebSocket signaling served
  -- by Lua scripts on worker 0, and its pages under /calls/. An empty script name turns the
  -- endpoint off.
  calls = {
    socketIoScript = "lua/calls/socketio_room.lua",
    socketIoPath = "/socket.io/",
    wsScript = "lua/calls/call_relay.lua",
    wsPath = "/call",
    -- Peers per room; a joiner beyond it gets `full` (the shipped scripts read it).
    roomCapacity = 2,
    pages = true,
    pingIntervalMs = 25000,
    pingTimeoutMs = 20000,
  },

  -- Allow POST /admin/reload from 127.0.0.1 (SIGHUP does the same).
  adminReload = true,

  -- Who may use the signaling port. A web page of another origin may call the HTTP API or open
  -- the protoo WebSocket only when its origin is listed ("scheme://host[:port]", port may be
  -- "*"); same-origin pages and clients that send no Origin (curl, ffmpeg scripts) always may.
  -- /admin/* and /metrics answer loopback clients only, unless adminToken is set (then also
  -- clients sending "Authorization: Bearer <adminToken>").
  security = {
    -- corsOrigins = { "https://app.example.com" },  -- RINGSFU_CORS_ORIGINS (comma-separated)
    -- wsOrigins = { "https://app.example.com" },    -- RINGSFU_WS_ORIGINS
    -- adminToken = "at least 16 characters",        -- RINGSFU_ADMIN_TOKEN
    -- Room tokens (lua/rooms/token_room.lua, rooms "secure-*"): the HS256 secret, or a PEM
    -- public key with tokenAlg = "ES256"/"RS256".
    -- tokenKey = "...",                             -- RINGSFU_TOKEN_KEY
    tokenAlg = "HS256",
  },

  -- SIGTERM: close every peer (WebSocket close 1001 "server shutting down"), room and
  -- transport, and exit 0 within this many seconds.
  shutdown = { timeout = 10 },

  -- Logs: format "text" or "json" (RINGSFU_LOG_FORMAT); per-module levels refine logLevel
  -- (RUST_LOG refines them again).
  log = {
    format = "text",
    -- modules = { ["ringsfu_core::engine"] = "debug" },
  },
}
