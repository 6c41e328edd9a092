//! SRTP protect/unprotect throughput: ringsfu's in-place transform against webrtc-srtp 0.17.
//!
//! Before measuring, a counting allocator (`allocation-counter`) checks that ringsfu's steady-state packet path does
//! not allocate (and reports how often webrtc-srtp does, for comparison).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringsfu_core::srtp::{SrtpContext, SrtpProfile};
use webrtc_srtp::context::Context as WebrtcContext;
use webrtc_srtp::protection_profile::ProtectionProfile as WebrtcProfile;

const SIZES: [usize; 2] = [160, 1200];
const SSRC: u32 = 0x1234_5678;

fn webrtc_profile(p: SrtpProfile) -> WebrtcProfile {
    match p {
        SrtpProfile::Aes128CmHmacSha1_80 => WebrtcProfile::Aes128CmHmacSha1_80,
        SrtpProfile::Aes128CmHmacSha1_32 => WebrtcProfile::Aes128CmHmacSha1_32,
        SrtpProfile::AeadAes128Gcm => WebrtcProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm => WebrtcProfile::AeadAes256Gcm,
    }
}

fn master(p: SrtpProfile) -> (Vec<u8>, Vec<u8>) {
    (
        vec![0x42; p.master_key_len()],
        vec![0x17; p.master_salt_len()],
    )
}

/// An RTP packet of `size` bytes in total (12-byte header, one-word extension, payload).
fn rtp(seq: u16, size: usize) -> Vec<u8> {
    let mut p = vec![0x90, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&1000u32.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]);
    p.resize(size, 0xab);
    p
}

/// Protects packets with consecutive sequence numbers, for the unprotect benches.
fn protected_stream(p: SrtpProfile, size: usize, count: u16) -> Vec<Vec<u8>> {
    let (k, s) = master(p);
    let mut tx = SrtpContext::new(p, &k, &s).unwrap();
    (0..count)
        .map(|seq| {
            let mut buf = rtp(seq, size);
            buf.resize(size + p.rtp_tag_len(), 0);
            let n = tx.protect_rtp(&mut buf, size).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

/// Counts allocations per protect+unprotect in steady state; ours must be zero.
fn check_allocations() {
    const PACKETS: u16 = 1000;
    for p in SrtpProfile::ALL {
        let (k, s) = master(p);
        let plain: Vec<Vec<u8>> = (0..=PACKETS).map(|seq| rtp(seq, 1200)).collect();

        let mut tx = SrtpContext::new(p, &k, &s).unwrap();
        let mut rx = SrtpContext::new(p, &k, &s).unwrap();
        let mut buf = vec![0u8; 1300];
        let mut run = |pkt: &[u8]| {
            buf[..pkt.len()].copy_from_slice(pkt);
            let n = tx.protect_rtp(&mut buf, pkt.len()).unwrap();
            let n = rx.unprotect_rtp(&mut buf, n).unwrap();
            assert_eq!(buf[..n], pkt[..]);
        };
        run(&plain[0]); // first sight of the SSRC may insert into the maps
        let ours = allocation_counter::measure(|| plain[1..].iter().for_each(|pkt| run(pkt)));
        assert_eq!(
            ours.count_total, 0,
            "{p:?}: ringsfu allocated on the packet path"
        );

        let mut wtx = WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap();
        let mut wrx = WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap();
        let mut run = |pkt: &[u8]| {
            let out = wrx.decrypt_rtp(&wtx.encrypt_rtp(pkt).unwrap()).unwrap();
            assert_eq!(out[..], pkt[..]);
        };
        run(&plain[0]);
        let theirs = allocation_counter::measure(|| plain[1..].iter().for_each(|pkt| run(pkt)));
        println!(
            "allocations per protect+unprotect of 1200 B, {}: ringsfu {}, webrtc-srtp {:.1}",
            p.name(),
            ours.count_total as f64 / f64::from(PACKETS),
            theirs.count_total as f64 / f64::from(PACKETS),
        );
    }
}

fn bench(c: &mut Criterion) {
    check_allocations();
    for p in SrtpProfile::ALL {
        let (k, s) = master(p);
        let mut group = c.benchmark_group(format!("srtp/{}", p.name()));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let plain = rtp(0, size);

            let mut tx = SrtpContext::new(p, &k, &s).unwrap();
            let mut buf = vec![0u8; size + 16];
            let mut seq = 0u16;
            group.bench_function(BenchmarkId::new("ringsfu_protect", size), |b| {
                b.iter(|| {
                    buf[..size].copy_from_slice(&plain);
                    buf[2..4].copy_from_slice(&seq.to_be_bytes());
                    seq = seq.wrapping_add(1);
                    black_box(tx.protect_rtp(&mut buf, size).unwrap())
                })
            });

            let mut wtx = WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap();
            let mut pkt = plain.clone();
            let mut seq = 0u16;
            group.bench_function(BenchmarkId::new("webrtc_srtp_protect", size), |b| {
                b.iter(|| {
                    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                    seq = seq.wrapping_add(1);
                    black_box(wtx.encrypt_rtp(&pkt).unwrap())
                })
            });

            // Unprotect needs fresh sequence numbers (our replay window); cycle through a
            // pre-protected stream and restart the receiver when it runs out.
            let stream = protected_stream(p, size, 4096);
            let mut rx = SrtpContext::new(p, &k, &s).unwrap();
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new("ringsfu_unprotect", size), |b| {
                b.iter(|| {
                    if i == stream.len() {
                        i = 0;
                        rx = SrtpContext::new(p, &k, &s).unwrap();
                    }
                    let pkt = &stream[i];
                    i += 1;
                    buf[..pkt.len()].copy_from_slice(pkt);
                    black_box(rx.unprotect_rtp(&mut buf, pkt.len()).unwrap())
                })
            });

            let mut wrx = WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap();
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new("webrtc_srtp_unprotect", size), |b| {
                b.iter(|| {
                    if i == stream.len() {
                        i = 0;
                        wrx = WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap();
                    }
                    let pkt = &stream[i];
                    i += 1;
                    black_box(wrx.decrypt_rtp(pkt).unwrap())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
