//! The connector listener: TLS 1.3 with client certificates from Latch's connector CA, serving
//! `ConnectorService`.
//!
//! The TLS handshake is done here rather than by tonic so that the protocol version is pinned to
//! 1.3 and the connector's identity is read once, at the handshake, from its verified certificate.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::pki::ConnectorCa;

/// Who is on the other end of a connection, as its TLS handshake proved.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: std::net::SocketAddr,
    /// The connector id from a verified client certificate; `None` without one (enrollment).
    pub connector_id: Option<String>,
}

/// One accepted connection, carrying its [`Peer`] to the gRPC handlers.
pub struct PeerConnection {
    tls: TlsStream<TcpStream>,
    peer: Peer,
}

impl tonic::transport::server::Connected for PeerConnection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for PeerConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

/// A slow or silent client must not hold a handshake slot forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and completes their handshakes concurrently; yields the good ones. A failed
/// handshake (no TLS 1.3, a certificate from another CA, an expired certificate) is logged and
/// dropped.
pub fn accept(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ca: Arc<ConnectorCa>,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerConnection, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, address) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a connector connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let handshaken = sender.clone();
            let ca = ca.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::info!(%address, error = %err, "connector handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%address, "connector handshake timed out");
                        return;
                    }
                };
                // rustls verified the chain against the CA; the id is read from it once here.
                let connector_id = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| ca.connector_id_of(leaf));
                let peer = Peer {
                    address,
                    connector_id,
                };
                let _ = handshaken.send(Ok(PeerConnection { tls, peer })).await;
            });
            if sender.is_closed() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
