//! The simulated network under the node's real gRPC code: a [`Transport`] whose channels
//! connect over turmoil's TCP, and the stream of accepted turmoil connections that
//! [`node::app::serve`] serves on. Everything above these two seams (tonic, hyper,
//! the Raft network, the services, the client) is the production code.
//!
//! The coordinator's HTTP endpoint is served the same way: [`SimListener`] is the listener
//! `axum::serve` accepts turmoil connections from (the production router and handlers above
//! it), and [`post_sql`] is a hyper HTTP/1.1 client of it over turmoil TCP.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use node::network::{endpoint, Transport};
use node::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Uri};

/// Channels over turmoil TCP, one per peer address, like `TcpTransport`. A transport belongs to
/// one incarnation of one host: its channels' background tasks run on that host's runtime.
#[derive(Debug, Default)]
pub struct SimTransport {
    channels: Mutex<BTreeMap<String, Channel>>,
}

impl Transport for SimTransport {
    fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = self.channels.lock().expect("channel map lock poisoned");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = endpoint(addr)?.connect_with_connector_lazy(SimConnector);
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Opens a turmoil TCP connection to a URI's `host:port`.
#[derive(Debug, Clone, Copy)]
struct SimConnector;

type ConnectFuture = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<SimStream>>> + Send>>;

impl tower_service::Service<Uri> for SimConnector {
    type Response = TokioIo<SimStream>;
    type Error = std::io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| std::io::Error::other(format!("no port in {uri}")))?;
            let stream = turmoil::net::TcpStream::connect((host, port)).await?;
            Ok(TokioIo::new(SimStream(stream)))
        })
    }
}

/// A turmoil TCP stream that tonic's server accepts (it needs `Connected`).
#[derive(Debug)]
pub struct SimStream(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for SimStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections accepted on a turmoil listener, as the stream `serve` takes.
pub fn incoming(
    listener: turmoil::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<SimStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    })
}

/// A turmoil listener as `axum::serve` takes it: the coordinator's HTTP router serves on it.
pub struct SimListener(pub turmoil::net::TcpListener);

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SimListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                // As axum does with a real listener: wait a little and accept again.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// `POST /v1/sql` with `sql` as the body to `host:port`, over a new turmoil TCP connection:
/// the answer's status and body, or why there was none.
pub async fn post_sql(host: &str, port: u16, sql: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    let stream = turmoil::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection's task ends with the exchange, or when the caller gives up on it.
    let _driver = AbortOnDrop(tokio::spawn(connection));
    let request = hyper::Request::post("/v1/sql")
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(sql.to_string())))
        .map_err(|e| format!("building the request: {e}"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("HTTP body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    exchange.await
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
