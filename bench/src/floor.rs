//! The floor: no server, only the work a forwarder cannot avoid, done by a bare loop on a pinned
//! thread with the engine's own I/O code: `recvmmsg` a batch, decrypt each packet once, then per
//! consumer copy + rewrite SSRC/PT/sequence/timestamp + encrypt, and `sendmmsg` per output socket.
//! Its CPU per forwarded packet is what the kernel and crypto allow; the server is judged against it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ringsfu_core::io::epoll::{bind_udp, EpollUdp};
use ringsfu_core::io::{RecvBatch, Route, TxQueue};
use ringsfu_core::srtp::{SrtpContext, SrtpProfile};

use crate::plan::{ConsumerSpec, Plan, PlanError, ProducerSpec, SrtpParams};
use crate::procstat;

/// Datagrams per `recvmmsg`, as the engine uses on a PlainTransport's port.
const RECV_BATCH: usize = 16;

/// How the floor's output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FloorSockets {
    /// One socket per consumer, like PlainTransports (one `sendmmsg` per consumer per batch).
    PerConsumer,
    /// All consumers from one socket, like WebRtcTransports on a shared port.
    Shared,
}

/// A running floor forwarder.
pub struct Floor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Kernel thread id of the forwarding thread.
    pub tid: u32,
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Out {
    ctx: SrtpContext,
    ssrc: u32,
    pt: u8,
    seq_offset: u16,
    ts_offset: u32,
    sock: usize,
    dest: SocketAddr,
}

/// Errors starting the floor.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// Socket trouble.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Bad keys.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The thread did not start.
    #[error("floor thread did not start")]
    Thread,
}

impl Floor {
    /// Starts the floor for `producers` streams fanned out to `consumer_addrs` (grouped per
    /// producer, `per_producer` each); returns it with the plan the generator should follow.
    pub fn start(
        producers: usize,
        consumer_addrs: &[SocketAddr],
        per_producer: usize,
        video: bool,
        profile: SrtpProfile,
        layout: FloorSockets,
        core: usize,
    ) -> Result<(Floor, Plan), FloorError> {
        let input = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), false)?;
        let in_addr = input.local_addr()?;
        let in_key = SrtpParams::random(profile);
        let mut plan = Plan {
            producers: Vec::new(),
            consumers: Vec::new(),
            server_pid: None,
        };
        for i in 0..producers {
            plan.producers.push(ProducerSpec {
                send_to: in_addr,
                bind: None,
                ssrc: 0x2000_0000 + i as u32,
                payload_type: if video { 96 } else { 111 },
                vp8: video,
                srtp: in_key.clone(),
            });
        }
        let n_socks = match layout {
            FloorSockets::PerConsumer => consumer_addrs.len(),
            FloorSockets::Shared => 1,
        };
        let socks: Vec<UdpSocket> = (0..n_socks)
            .map(|_| bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)), false))
            .collect::<Result<_, _>>()?;
        let mut outs: Vec<Vec<Out>> = (0..producers).map(|_| Vec::new()).collect();
        for (k, addr) in consumer_addrs.iter().enumerate() {
            let p = k / per_producer.max(1);
            if p >= producers {
                break;
            }
            let key = SrtpParams::random(profile);
            let ssrc = 0x3000_0000 + k as u32;
            let pt = if video { 101 } else { 100 };
            outs[p].push(Out {
                ctx: key.context()?,
                ssrc,
                pt,
                seq_offset: rand::random(),
                ts_offset: rand::random(),
                sock: if n_socks == 1 { 0 } else { k },
                dest: *addr,
            });
            plan.consumers.push(ConsumerSpec {
                listen: *addr,
                producer: p,
                ssrc: Some(ssrc),
                payload_type: Some(pt),
                srtp: key,
            });
        }
        let in_ctx = in_key.context()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let s2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-floor".into())
            .spawn(move || {
                let _ = ringsfu_core::io::pin_current_thread(core);
                let _ = tid_tx.send(procstat::current_tid());
                if let Err(e) = floor_loop(input, socks, in_ctx, outs, s2) {
                    eprintln!("floor: {e}");
                }
            })?;
        let tid = tid_rx.recv().ok().flatten().ok_or(FloorError::Thread)?;
        Ok((
            Floor {
                stop,
                thread: Some(thread),
                tid,
            },
            plan,
        ))
    }

    /// CPU time of the floor thread so far.
    pub fn cpu(&self) -> Option<Duration> {
        procstat::thread_cpu(self.tid)
    }
}

fn floor_loop(
    input: UdpSocket,
    socks: Vec<UdpSocket>,
    mut in_ctx: SrtpContext,
    mut outs: Vec<Vec<Out>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let input = EpollUdp::new(input)?;
        let socks: Vec<EpollUdp> = socks
            .into_iter()
            .map(EpollUdp::new)
            .collect::<Result<_, _>>()?;
        let mut queues: Vec<TxQueue> = (0..socks.len()).map(|_| TxQueue::new()).collect();
        // Index list for sendmmsg: a socket may get a whole batch for every consumer.
        let most = RECV_BATCH * outs.iter().map(Vec::len).sum::<usize>().max(1);
        let order: Vec<u32> = (0..most as u32).collect();
        let mut rb = RecvBatch::new(RECV_BATCH);
        while !stop.load(Ordering::Relaxed) {
            if tokio::time::timeout(Duration::from_millis(50), input.readable())
                .await
                .is_err()
            {
                continue;
            }
            loop {
                let got = match input.recv_batch(&mut rb) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for i in 0..got {
                    let buf = &mut rb.bufs[i];
                    let Ok(len) = in_ctx.unprotect_rtp(buf, rb.lens[i]) else {
                        continue;
                    };
                    if len < 12 {
                        continue;
                    }
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let Some(list) = outs.get_mut(ssrc.wrapping_sub(0x2000_0000) as usize) else {
                        continue;
                    };
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    for o in list.iter_mut() {
                        let q = &mut queues[o.sock];
                        let dst = q.next_buffer();
                        dst[..len].copy_from_slice(&buf[..len]);
                        dst[1] = (dst[1] & 0x80) | o.pt;
                        dst[2..4].copy_from_slice(&seq.wrapping_add(o.seq_offset).to_be_bytes());
                        dst[4..8].copy_from_slice(&ts.wrapping_add(o.ts_offset).to_be_bytes());
                        dst[8..12].copy_from_slice(&o.ssrc.to_be_bytes());
                        if let Ok(n) = o.ctx.protect_rtp(dst, len) {
                            q.commit(
                                n,
                                Route::Udp {
                                    socket: o.sock as u16,
                                    dest: o.dest,
                                },
                            );
                        }
                    }
                }
                for (s, q) in socks.iter().zip(queues.iter_mut()) {
                    let k = q.pending();
                    if k == 0 {
                        continue;
                    }
                    s.send_entries(q.queued(), &order[..k.min(order.len())]);
                    q.clear();
                }
            }
        }
        Ok(())
    })
}
