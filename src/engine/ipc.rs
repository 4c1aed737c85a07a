//! Framing for the socket between the supervisor and a worker process.
//!
//! A frame is `[u32 length][u8 flags][u32 header length][JSON header][payload]`, little-endian. The
//! JSON header is the message without its bulk bytes (see `protocol::Payload`); the payload follows raw,
//! so a body chunk costs no encoding. A frame over `max` bytes is a protocol error: the supervisor reads
//! what a possibly hostile worker writes, and must bound what it buffers.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::protocol::Payload;

const HAS_PAYLOAD: u8 = 1;

/// Encodes one message as a frame.
pub fn encode<T: Serialize + Payload>(mut msg: T) -> Vec<u8> {
    let payload = msg.take_payload();
    let header = serde_json::to_vec(&msg).expect("protocol messages always serialise");
    let payload_len = payload.as_ref().map_or(0, Vec::len);
    let len = 1 + 4 + header.len() + payload_len;
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(if payload.is_some() { HAS_PAYLOAD } else { 0 });
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    if let Some(p) = payload {
        out.extend_from_slice(&p);
    }
    out
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Decodes a frame's body (everything after the length).
pub fn decode<T: DeserializeOwned + Payload>(frame: &[u8]) -> io::Result<T> {
    if frame.len() < 5 {
        return Err(invalid("frame too short"));
    }
    let flags = frame[0];
    let header_len = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes")) as usize;
    let rest = &frame[5..];
    if header_len > rest.len() {
        return Err(invalid("frame header longer than the frame"));
    }
    let mut msg: T = serde_json::from_slice(&rest[..header_len])
        .map_err(|e| invalid(format!("bad message: {e}")))?;
    if flags & HAS_PAYLOAD != 0 {
        msg.put_payload(rest[header_len..].to_vec());
    } else if header_len != rest.len() {
        return Err(invalid("trailing bytes in a frame without payload"));
    }
    Ok(msg)
}

/// Reads one message; `Ok(None)` at a clean end of stream.
pub async fn read<T, R>(reader: &mut R, max: usize) -> io::Result<Option<T>>
where
    T: DeserializeOwned + Payload,
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(invalid(format!("frame of {len} bytes is over the limit")));
    }
    let mut frame = vec![0u8; len];
    reader.read_exact(&mut frame).await?;
    decode(&frame).map(Some)
}

/// A frame on its way out, and who wants to know once it is on the socket.
pub struct Outgoing {
    pub frame: Vec<u8>,
    pub flushed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Outgoing {
    pub fn new<T: Serialize + Payload>(msg: T) -> Outgoing {
        Outgoing {
            frame: encode(msg),
            flushed: None,
        }
    }
}

/// Frames up to this size are gathered into one write with the frames queued behind them.
const GATHER: usize = 64 * 1024;

/// Writes every frame `rx` yields until it closes or the socket fails. Frames queued together go out
/// in one write, so a response head, its first chunk and its end wake the other side once.
/// `unread`, when given, counts the bytes queued and not yet written: it is lowered as frames go out.
pub async fn write_all<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    unread: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) {
    let mut batch = Vec::with_capacity(GATHER);
    let mut acks = Vec::new();
    let mut written = 0usize;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            if out.frame.len() > GATHER {
                // A large frame goes out on its own, after what was gathered before it.
                if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
                    return;
                }
                batch.clear();
                if writer.write_all(&out.frame).await.is_err() {
                    return;
                }
            } else {
                batch.extend_from_slice(&out.frame);
            }
            written += out.frame.len();
            acks.extend(out.flushed);
            if batch.len() < GATHER {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
        if let Some(u) = &unread {
            u.fetch_sub(written, std::sync::atomic::Ordering::Relaxed);
        }
        written = 0;
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}

/// A reader that buffers, so that frames written together are read with one call.
pub fn buffered<R: AsyncRead>(reader: R) -> tokio::io::BufReader<R> {
    tokio::io::BufReader::with_capacity(GATHER, reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::protocol::{FetchStart, GatewayMsg, HostMsg};

    #[test]
    fn round_trips_with_and_without_payload() {
        let msg = HostMsg::Fetch(FetchStart {
            id: 7,
            method: "POST".into(),
            url: "https://a.test/".into(),
            headers: vec![("x".into(), "y".into())],
            redirect: "follow".into(),
            stream: false,
            body: Some(vec![]),
        });
        let frame = encode(msg);
        let back: HostMsg = decode(&frame[4..]).unwrap();
        assert!(
            matches!(back, HostMsg::Fetch(FetchStart { id: 7, body: Some(ref b), .. }) if b.is_empty())
        );

        let none = encode(HostMsg::Fetch(FetchStart {
            id: 8,
            method: "GET".into(),
            url: "https://a.test/".into(),
            headers: vec![],
            redirect: "follow".into(),
            stream: false,
            body: None,
        }));
        let back: HostMsg = decode(&none[4..]).unwrap();
        assert!(matches!(
            back,
            HostMsg::Fetch(FetchStart {
                id: 8,
                body: None,
                ..
            })
        ));

        let chunk = encode(GatewayMsg::Chunk {
            id: 1,
            data: vec![0, 1, 2, 255],
        });
        let back: GatewayMsg = decode(&chunk[4..]).unwrap();
        assert!(matches!(back, GatewayMsg::Chunk { id: 1, ref data } if data == &[0, 1, 2, 255]));
    }

    #[test]
    fn refuses_bad_frames() {
        assert!(decode::<HostMsg>(&[0, 1]).is_err());
        assert!(decode::<HostMsg>(&[0, 255, 0, 0, 0]).is_err());
        let mut f = encode(HostMsg::Abort { id: 1 });
        f.push(b'x');
        assert!(decode::<HostMsg>(&f[4..]).is_err());
    }

    #[tokio::test]
    async fn reader_bounds_frames() {
        let frame = encode(GatewayMsg::Chunk {
            id: 1,
            data: vec![0; 1000],
        });
        let mut r: &[u8] = &frame;
        assert!(read::<GatewayMsg, _>(&mut r, 100).await.is_err());
        let mut r: &[u8] = &frame;
        assert!(read::<GatewayMsg, _>(&mut r, 2000).await.unwrap().is_some());
        let mut empty: &[u8] = &[];
        assert!(read::<GatewayMsg, _>(&mut empty, 2000)
            .await
            .unwrap()
            .is_none());
    }
}
