//! One client connection: read frames, dispatch, write responses in
//! request order.
//!
//! The reader task (this function) reads and dispatches requests one after
//! another, so appends from one connection happen in the order sent. Each
//! dispatch yields a `Reply`; replies go through a bounded channel to the
//! writer task, which awaits deferred replies (long-poll fetches, produce
//! waiting for fsync) in order. The channel bound (`queued.max.requests`)
//! is the per-connection in-flight limit.
//!
//! A protocol error closes this connection only (mini-redis' rule).

use std::sync::Arc;

use bytes::BytesMut;
use odradek_protocol::frame::{check_frame_len, split_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::handlers::{dispatch, Reply};

// Small on purpose: 1,000 idle connections must stay cheap. Frames larger
// than the buffer are read straight into their own allocation, and large
// responses bypass the write buffer, so throughput does not depend on it.
const READ_BUFFER: usize = 8 * 1024;
const WRITE_BUFFER: usize = 8 * 1024;

pub async fn serve(stream: TcpStream, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let peer_host = peer.map_or_else(String::new, |p| format!("/{}", p.ip()));
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let (replies, pending) = mpsc::channel::<Reply>(broker.config.queued_max_requests);
    // Owned by this connection; ends when `replies` is dropped and every
    // queued reply is written, or when the peer stops reading.
    let writer = tokio::spawn(write_replies(write_half, pending));
    let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
    let max = broker.config.socket_request_max_bytes;
    loop {
        let mut prefix = [0u8; 4];
        let read = tokio::select! {
            r = reader.read_exact(&mut prefix) => r,
            _ = shutdown.changed() => break,
        };
        if read.is_err() {
            break; // closed by the peer, or reset
        }
        let len = match check_frame_len(prefix, max) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "closing connection");
                break;
            }
        };
        // Read into uninitialised capacity: zeroing megabyte frames first
        // showed up in produce profiles.
        let mut frame = BytesMut::with_capacity(len);
        if read_frame(&mut reader, &mut frame, len).await.is_err() {
            break; // truncated request
        }
        let request = match split_request(frame.freeze()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "closing connection");
                break;
            }
        };
        let (api, version) = (request.api_key, request.version());
        match dispatch(&broker, request, &peer_host).await {
            Ok(reply) => {
                if replies.send(reply).await.is_err() {
                    break; // writer gone: the peer stopped reading
                }
            }
            Err(e) => {
                tracing::warn!(?peer, ?api, version, error = %e, "closing connection");
                break;
            }
        }
    }
    drop(replies);
    let _ = writer.await;
}

/// Reads exactly `len` bytes into `frame` without reading past the frame.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    frame: &mut BytesMut,
    len: usize,
) -> std::io::Result<()> {
    let mut limited = reader.take(len as u64);
    while frame.len() < len {
        if limited.read_buf(frame).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

async fn write_replies(
    write_half: tokio::net::tcp::OwnedWriteHalf,
    mut pending: mpsc::Receiver<Reply>,
) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, write_half);
    while let Some(reply) = pending.recv().await {
        let bytes = match reply {
            Reply::Ready(b) => b,
            // An empty deferred reply means it could not be encoded; the
            // client would wait forever for that correlation id, so the
            // connection is closed instead.
            Reply::Later(f) => match f.await {
                b if b.is_empty() => return,
                b => b,
            },
            Reply::Nothing => continue,
        };
        if out.write_all(&bytes).await.is_err() {
            return;
        }
        // Batch writes while more replies are queued; flush when idle.
        if pending.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
    let _ = out.shutdown().await;
}
