#!/usr/bin/env python3
"""An independent WebRTC stack against ringsfu's WHIP and WHEP (issue 14, "Done means" 3).

Python aiortc (PyPI; .ci/run installs it into tests/aiortc/.venv) publishes a generated test
pattern (320x240 moving bar, 15 fps, VP8) and a 440 Hz tone (Opus) through ``POST /whip/ROOM``,
then plays it back through ``POST /whep/ROOM`` (the default WHEP target: the latest WHIP
publisher) and checks what a viewer would notice: decoded video frames of the published size
whose picture is the pattern (a bright bar on a dark background, moving) and decoded audio.
Both sessions are ended with DELETE (200). aiortc negotiates REMB (abs-send-time), not
transport-cc: its video sender must receive ringsfu's REMB estimates naming its stream, and its
VP8 encoder must follow them (aiortc sets the encoder's target bitrate from each REMB).

Usage: RINGSFU_HTTP=http://127.0.0.1:PORT [RINGSFU_WHIP_TOKEN=...] python whip_whep.py
Output: ``PASS name`` / ``FAIL name: why`` lines, then ``N passed, M failed``; exit 1 on a failure.
The whole run is bounded (RINGSFU_AIORTC_TIMEOUT, default 60 s).
"""

import asyncio
import fractions
import math
import os
import sys
import time
import urllib.error
import urllib.request

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

BASE = os.environ.get("RINGSFU_HTTP", "http://127.0.0.1:4443")
TOKEN = os.environ.get("RINGSFU_WHIP_TOKEN", "")
TIMEOUT = float(os.environ.get("RINGSFU_AIORTC_TIMEOUT", "60"))
W, H, FPS = 320, 240, 15
BAR = 40  # bar width in pixels

results = {"passed": 0, "failed": 0}


def check(name, ok, why=""):
    if ok:
        results["passed"] += 1
        print(f"PASS {name}", flush=True)
    else:
        results["failed"] += 1
        print(f"FAIL {name}: {why}", flush=True)
    return ok


class PacedTrack(MediaStreamTrack):
    """A track that hands out frame n at t0 + n * interval (`interval` seconds, `make(n)` the frame)."""

    interval = None

    def __init__(self):
        super().__init__()
        self.n = 0
        self.t0 = None

    async def recv(self):
        if self.t0 is None:
            self.t0 = time.monotonic()
        due = self.t0 + self.n * self.interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self.make(self.n)
        self.n += 1
        return frame


class PatternTrack(PacedTrack):
    """Luma 16 everywhere but a vertical bar (luma 235) that moves 8 px per frame."""

    kind = "video"
    interval = 1 / FPS

    def make(self, n):
        frame = av.VideoFrame(W, H, "yuv420p")
        x0 = (n * 8) % (W - BAR)
        y = frame.planes[0]
        row = bytearray([16] * y.line_size)
        row[x0 : x0 + BAR] = bytes([235] * BAR)
        y.update(bytes(row) * H)
        for p in frame.planes[1:]:
            p.update(bytes([128]) * (p.line_size * (H // 2)))
        frame.pts = n * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


class ToneTrack(PacedTrack):
    """440 Hz sine, 20 ms mono s16 frames at 48 kHz."""

    kind = "audio"
    interval = 0.02

    def make(self, n):
        samples = 960
        base = n * samples
        pcm = bytearray()
        for i in range(samples):
            v = int(8000 * math.sin(2 * math.pi * 440 * (base + i) / 48000))
            pcm += v.to_bytes(2, "little", signed=True)
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(bytes(pcm))
        frame.sample_rate = 48000
        frame.pts = base
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


def http(method, path, body=None):
    headers = {}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    if TOKEN:
        headers["Authorization"] = f"Bearer {TOKEN}"
    req = urllib.request.Request(BASE + path, data=body.encode() if body else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as res:
            return res.status, res.read().decode(), dict(res.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


async def post_offer(pc, path):
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
    status, text, headers = await asyncio.to_thread(http, "POST", path, pc.localDescription.sdp)
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
    return status, text, headers.get("Location") or headers.get("location")


def spy_rembs(sender):
    """Records the bitrate of every REMB the server sends that names `sender`'s stream."""
    seen = []
    handle = sender._handle_rtcp_packet

    async def spy(packet):
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if sender._ssrc in ssrcs:
                    seen.append(bitrate)
            except ValueError:
                pass
        await handle(packet)

    sender._handle_rtcp_packet = spy
    return seen


def bar_position(frame):
    """Column range of the bright bar in the middle row of a decoded frame, or None."""
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    row = data[plane.line_size * (gray.height // 2) : plane.line_size * (gray.height // 2) + gray.width]
    bright = [i for i, v in enumerate(row) if v > 128]
    dark = sum(1 for v in row if v < 64)
    if not bright or dark < gray.width // 2:
        return None
    return bright[0], bright[-1]


async def main():
    room = f"aiortc-{int(time.time() * 1000):x}"
    pub = RTCPeerConnection()
    sub = RTCPeerConnection()
    try:
        video_sender = pub.addTransceiver(PatternTrack(), direction="sendonly").sender
        pub.addTransceiver(ToneTrack(), direction="sendonly")
        rembs = spy_rembs(video_sender)
        status, text, whip_loc = await post_offer(pub, f"/whip/{room}?name=aiortc")
        if not check("aiortc WHIP POST → 201 with Location", status == 201 and whip_loc, f"{status} {text[:300]}"):
            return
        connected = asyncio.get_running_loop().create_future()

        @pub.on("connectionstatechange")
        def _():
            if pub.connectionState in ("connected", "failed") and not connected.done():
                connected.set_result(pub.connectionState)

        try:
            state = await asyncio.wait_for(connected, 20)
        except asyncio.TimeoutError:
            state = pub.connectionState
        if not check("aiortc WHIP publisher connects (ICE + DTLS)", state == "connected", state):
            return

        tracks = {}

        @sub.on("track")
        def on_track(track):
            tracks[track.kind] = track

        sub.addTransceiver("video", direction="recvonly")
        sub.addTransceiver("audio", direction="recvonly")
        status, text, whep_loc = await post_offer(sub, f"/whep/{room}")
        if not check("aiortc WHEP POST → 201 with Location", status == 201 and whep_loc, f"{status} {text[:300]}"):
            return

        async def video():
            frames, sizes, bars = 0, set(), set()
            while frames < 45:
                f = await tracks["video"].recv()
                frames += 1
                sizes.add((f.width, f.height))
                b = bar_position(f)
                if b is not None:
                    bars.add(b[0])
            return frames, sizes, bars

        async def audio():
            n, peak = 0, 0
            while n < 100:
                f = await tracks["audio"].recv()
                n += 1
                arr = bytes(f.planes[0])
                if f.format.name == "s16":
                    peak = max(peak, max(abs(int.from_bytes(arr[i : i + 2], "little", signed=True)) for i in range(0, len(arr), 64)))
            return n, peak

        deadline = time.monotonic() + 20
        while not ("video" in tracks and "audio" in tracks) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        check("aiortc WHEP viewer gets an audio and a video track", "video" in tracks and "audio" in tracks, sorted(tracks))
        if "video" in tracks:
            try:
                frames, sizes, bars = await asyncio.wait_for(video(), 25)
                ok = frames >= 45 and sizes == {(W, H)} and len(bars) >= 5
                check("aiortc WHEP viewer decodes the WHIP test pattern (45 frames, 320x240, moving bar)", ok,
                      f"frames={frames} sizes={sizes} bar positions={sorted(bars)[:10]}")
            except asyncio.TimeoutError:
                check("aiortc WHEP viewer decodes the WHIP test pattern (45 frames, 320x240, moving bar)", False,
                      "fewer than 45 frames within 25 s")
        if "audio" in tracks:
            try:
                n, peak = await asyncio.wait_for(audio(), 15)
                check("aiortc WHEP viewer decodes the WHIP tone (100 audio frames, not silence)", n >= 100 and peak > 1000,
                      f"frames={n} peak={peak}")
            except asyncio.TimeoutError:
                check("aiortc WHEP viewer decodes the WHIP tone (100 audio frames, not silence)", False,
                      "fewer than 100 audio frames within 15 s")
        # REMB: one a second once a second of the publisher's packets was measured.
        deadline = time.monotonic() + 10
        while len(rembs) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        encoder = getattr(video_sender, "_RTCRtpSender__encoder", None)
        target = getattr(encoder, "target_bitrate", None)
        check("aiortc WHIP publisher receives ringsfu's REMB estimates for its video and its encoder follows",
              len(rembs) >= 3 and all(30_000 <= b <= 100_000_000 for b in rembs)
              and target == max(250_000, min(rembs[-1], 1_500_000)),
              f"REMBs (bit/s) {rembs}, encoder target {target}")
        print(f"# REMBs (bit/s) {rembs}, encoder target {target}", flush=True)
        for name, loc in (("WHEP", whep_loc), ("WHIP", whip_loc)):
            status, text, _ = await asyncio.to_thread(http, "DELETE", loc)
            check(f"aiortc DELETE {name} session → 200", status == 200, f"{status} {text[:200]}")
    finally:
        await sub.close()
        await pub.close()


async def bounded():
    try:
        await asyncio.wait_for(main(), TIMEOUT)
    except asyncio.TimeoutError:
        check("aiortc run", False, f"exceeded {TIMEOUT} s")


if __name__ == "__main__":
    try:
        asyncio.run(bounded())
    except Exception as e:  # noqa: BLE001 - any crash is a failure with its reason
        check("aiortc run", False, repr(e))
    if results["passed"] < 7 and results["failed"] == 0:
        check("aiortc run", False, "stopped before its last check")
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)
