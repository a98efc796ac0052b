//! Raft RPCs and controller requests over TCP: `length: u32 | message`
//! frames (see `wire`), one request and its response at a time per
//! connection; every connection has its own task, so a slow forwarded
//! request holds up only its own connection.
//!
//! Each openraft client (one per peer and purpose) and each pooled
//! forwarding connection owns one connection, opened lazily and dropped
//! on any error; the next call reconnects.
//! The server side accepts at most [`MAX_CONNECTIONS`] connections and
//! frames of at most [`MAX_FRAME_BYTES`]; a bad frame closes only its
//! connection.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::{wire, Connection, Endpoint, RaftRequest, RaftResponse, Transport, TransportError};
use crate::NodeId;

/// Above the snapshot chunk size and any sane batch of metadata entries.
pub const MAX_FRAME_BYTES: u32 = 64 << 20;
/// Voters open a few connections each, and every broker up to eight for
/// forwarded requests (`ControllerClient`); this only bounds misbehaviour.
pub const MAX_CONNECTIONS: usize = 1024;

#[derive(Clone)]
pub struct TcpTransport {
    /// Taken by `serve`; `None` for a transport that only connects out.
    listener: Arc<Mutex<Option<std::net::TcpListener>>>,
    local_addr: Option<SocketAddr>,
}

impl TcpTransport {
    /// Binds the controller listener now, so a test can bind port 0 and
    /// learn the address before any voter starts.
    pub fn bind(addr: impl ToSocketAddrs) -> std::io::Result<TcpTransport> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(TcpTransport {
            local_addr: Some(listener.local_addr()?),
            listener: Arc::new(Mutex::new(Some(listener))),
        })
    }

    /// A transport with no listener, for a single voter that has no peers
    /// (or a node that only ever calls out).
    pub fn unbound() -> TcpTransport {
        TcpTransport {
            listener: Arc::new(Mutex::new(None)),
            local_addr: None,
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

/// Serving stops when this is dropped: the accept loop and every
/// connection task watch the channel and exit once the sender is gone.
pub struct TcpServing {
    _stop: Option<watch::Sender<()>>,
}

impl Transport for TcpTransport {
    type Conn = TcpConn;
    type Serving = TcpServing;

    fn connect(&self, _target: NodeId, node: &BasicNode) -> TcpConn {
        TcpConn {
            addr: node.addr.clone(),
            stream: None,
        }
    }

    fn serve(&self, endpoint: Endpoint) -> std::io::Result<TcpServing> {
        let taken = self.listener.lock().expect("listener lock poisoned").take();
        let Some(listener) = taken else {
            return Ok(TcpServing { _stop: None });
        };
        let listener = TcpListener::from_std(listener)?;
        let (stop_tx, stop) = watch::channel(());
        tracing::info!(node = endpoint.id(), addr = ?self.local_addr, "serving raft requests");
        tokio::spawn(accept_loop(listener, endpoint, stop));
        Ok(TcpServing {
            _stop: Some(stop_tx),
        })
    }
}

async fn accept_loop(listener: TcpListener, endpoint: Endpoint, mut stop: watch::Receiver<()>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "raft accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("too many raft connections; closing a new one");
            continue;
        };
        let (endpoint, stop) = (endpoint.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_connection(stream, endpoint, stop).await {
                tracing::debug!(error = %e, "raft connection closed");
            }
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    endpoint: Endpoint,
    mut stop: watch::Receiver<()>,
) -> Result<(), TransportError> {
    stream.set_nodelay(true)?;
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return Ok(()),
            frame = read_frame(&mut stream) => frame?,
        };
        let Some(frame) = frame else { return Ok(()) };
        let request =
            wire::decode_request(&frame).map_err(|e| TransportError::Protocol(e.to_string()))?;
        // Stopping abandons a request in progress, as a crash would: its
        // client sees the connection close.
        let response = tokio::select! {
            _ = stop.changed() => return Ok(()),
            response = endpoint.handle(request) => response,
        };
        let mut buf = Vec::new();
        wire::encode_response(&mut buf, &response);
        write_frame(&mut stream, &buf).await?;
    }
}

/// Reads one frame; `None` on a clean end of stream between frames.
async fn read_frame(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, TransportError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(TransportError::Protocol(format!(
            "frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
        )));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> Result<(), TransportError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME_BYTES)
        .ok_or_else(|| TransportError::Protocol(format!("frame of {} bytes", body.len())))?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    stream.write_all(&buf).await?;
    Ok(())
}

pub struct TcpConn {
    addr: String,
    stream: Option<TcpStream>,
}

impl TcpConn {
    async fn round_trip(&mut self, request: &[u8]) -> Result<RaftResponse, TransportError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                self.stream.insert(s)
            }
        };
        write_frame(stream, request).await?;
        let frame = read_frame(stream)
            .await?
            .ok_or_else(|| TransportError::Protocol("connection closed".into()))?;
        wire::decode_response(&frame).map_err(|e| TransportError::Protocol(e.to_string()))
    }
}

impl Connection for TcpConn {
    async fn call(
        &mut self,
        request: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, TransportError> {
        let mut buf = Vec::new();
        wire::encode_request(&mut buf, &request);
        let result = match tokio::time::timeout(timeout, self.round_trip(&buf)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout(timeout)),
        };
        if result.is_err() {
            // The stream may hold half a frame or a late response.
            self.stream = None;
        }
        result
    }
}
