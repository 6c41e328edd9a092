//! Data channels over a WebRtcTransport's SCTP association, with an independent stack on the peer
//! side (webrtc-rs: ICE agent, DTLS client, webrtc-sctp, webrtc-data with DCEP).

use std::time::Instant;
mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringsfu_core::data::DataMessage;
use ringsfu_core::engine::EngineEvent;
use ringsfu_core::sctp::Ppid;
use uuid::Uuid;
use webrtc::data::data_channel::DataChannel;

const WAIT: Duration = Duration::from_secs(20);

async fn next_message(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
    dc: Uuid,
) -> DataMessage {
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("message in time")
            .unwrap()
        {
            EngineEvent::DataConsumerMessage {
                data_consumer,
                message,
            } if data_consumer == dc => return message,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcep_channel_from_an_independent_stack_exchanges_messages_both_ways() {
    let w = spawn_sctp_worker();
    let mut events = w.events().await.unwrap();
    let router = w
        .with_engine(|e| e.create_router(&demo_media_codecs(), Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let a = sctp_peer(&w, router).await;

    // The peer opens "chat" in-band (DCEP OPEN); the server ACKs and makes a data producer.
    let chat = DataChannel::dial(&a.assoc, 1, dc_config("chat", false))
        .await
        .unwrap();
    let producer = loop {
        if let EngineEvent::DataProducerOpenedByPeer {
            data_producer,
            label,
            ..
        } = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(label, "chat");
            break data_producer;
        }
    };
    // A direct (in-process) consumer receives what the peer sends: text, binary, 200 KB.
    let dc = w
        .with_engine(move |e| {
            e.consume_data(None, &producer, None, None, None, false, Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let dc: Uuid = dc["id"].as_str().unwrap().parse().unwrap();
    chat.write_data_channel(&Bytes::from_static(b"hello ringsfu"), true)
        .await
        .unwrap();
    let m = next_message(&mut events, dc).await;
    assert_eq!(
        (m.ppid, m.data.as_slice()),
        (Ppid::String, &b"hello ringsfu"[..])
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    chat.write_data_channel(&Bytes::from(big.clone()), false)
        .await
        .unwrap();
    let m = next_message(&mut events, dc).await;
    assert_eq!(m.ppid, Ppid::Binary);
    assert!(m.data == big, "200 KB binary message intact");

    // Server → peer: a direct producer consumed on the peer's transport; the peer listens on the
    // stream id the server picked (negotiated channel, as mediasoup-client does).
    let bot = w
        .with_engine(move |e| {
            e.produce_data(&router, None, None, "bot", "", false, Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let bot: Uuid = bot["id"].as_str().unwrap().parse().unwrap();
    let t = a.transport;
    let cons = w
        .with_engine(move |e| {
            e.consume_data(Some(&t), &bot, None, None, None, false, Instant::now())
                .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let stream = cons["sctpStreamParameters"]["streamId"].as_u64().unwrap() as u16;
    let inbox = DataChannel::dial(&a.assoc, stream, dc_config("bot", true))
        .await
        .unwrap();
    w.with_engine(move |e| {
        e.send_data(
            &bot,
            DataMessage {
                ppid: Ppid::String,
                data: b"hi from the bot".to_vec(),
            },
            Instant::now(),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, is_string) = tokio::time::timeout(WAIT, inbox.read_data_channel(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(is_string);
    assert_eq!(&buf[..n], b"hi from the bot");

    // Too large for maxMessageSize: rejected, nothing sent.
    let huge = vec![0u8; 300_000];
    let r = w
        .with_engine(move |e| {
            e.send_data(
                &bot,
                DataMessage {
                    ppid: Ppid::Binary,
                    data: huge,
                },
                Instant::now(),
            )
        })
        .await
        .unwrap();
    assert!(r.is_err(), "oversized message rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_peer_channel_closes_the_data_consumers_of_its_producer() {
    let w = spawn_sctp_worker();
    let mut events = w.events().await.unwrap();
    let router = w
        .with_engine(|e| e.create_router(&demo_media_codecs(), Instant::now()))
        .await
        .unwrap()
        .unwrap();
    let a = sctp_peer(&w, router).await;
    let b = sctp_peer(&w, router).await;
    // Pre-negotiated producer on A (mediasoup-client style: produceData with sctpStreamParameters).
    let ta = a.transport;
    let p = w
        .with_engine(move |e| {
            e.produce_data(
                &router,
                Some(&ta),
                Some(
                    serde_json::from_value(serde_json::json!({"streamId": 3, "ordered": true}))
                        .unwrap(),
                ),
                "chat",
                "",
                false,
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let producer: Uuid = p["id"].as_str().unwrap().parse().unwrap();
    let tb = b.transport;
    let c = w
        .with_engine(move |e| {
            e.consume_data(
                Some(&tb),
                &producer,
                None,
                None,
                None,
                false,
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    let consumer: Uuid = c["id"].as_str().unwrap().parse().unwrap();
    let stream = c["sctpStreamParameters"]["streamId"].as_u64().unwrap() as u16;
    let a_chat = DataChannel::dial(&a.assoc, 3, dc_config("chat", true))
        .await
        .unwrap();
    let b_chat = DataChannel::dial(&b.assoc, stream, dc_config("chat", true))
        .await
        .unwrap();
    a_chat
        .write_data_channel(&Bytes::from_static(b"A to B"), true)
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let (n, _) = tokio::time::timeout(WAIT, b_chat.read_data_channel(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"A to B", "chat message fans out to B");
    // A closes its channel (SCTP stream reset): the producer closes, and B's consumer with it.
    a_chat.close().await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("consumer closed in time")
            .unwrap()
        {
            EngineEvent::DataConsumerDataProducerClosed { data_consumer, .. }
                if data_consumer == consumer =>
            {
                break
            }
            _ => {}
        }
    }
}
