//! The simulated network under the node's real gRPC code: a [`Transport`] whose channels
//! connect over turmoil's TCP, and the stream of accepted turmoil connections that
//! [`node::app::serve`] serves on. Everything above these two seams (tonic, hyper,
//! the Raft network, the services, the client) is the production code.

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
