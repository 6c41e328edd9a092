//! Signaling front ends: the protoo WebSocket server and the HTTP server.
