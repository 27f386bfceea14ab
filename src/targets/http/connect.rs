//! Connections for the `http` target: straight to the target, or through the HTTP proxy the
//! environment names for it, as curl (and reqwest before) read `HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` (upper or lower case).
//!
//! * An `https://` target through a proxy is tunnelled (`CONNECT host:port`); TLS then runs end
//!   to end with the target, so the proxy sees neither the payload nor the headers.
//! * An `http://` target through a proxy is forwarded: the connection goes to the proxy and
//!   each request names the full URL (hyper does this for a connection marked as proxied);
//!   the proxy's credentials go in `Proxy-Authorization` (see [`Proxies::authorization`]).
//! * Only `http://` proxies are supported; a target routed to another kind (`https://`,
//!   `socks5://`) fails to connect, saying so.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which proxy, if any, each target URL goes through.
#[derive(Clone)]
pub struct Proxies(Arc<Matcher>);

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher may hold a proxy's password.
        f.write_str("Proxies(..)")
    }
}

impl Proxies {
    /// From `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`, read once, at start.
    pub fn from_env() -> Proxies {
        Proxies(Arc::new(Matcher::from_env()))
    }

    /// `proxy` for every target, except the hosts in `no_proxy` (`NO_PROXY`'s syntax).
    pub fn all(proxy: &str, no_proxy: &str) -> Proxies {
        Proxies(Arc::new(
            Matcher::builder()
                .all(proxy.to_owned())
                .no(no_proxy.to_owned())
                .build(),
        ))
    }

    /// No proxy for any target.
    pub fn none() -> Proxies {
        Proxies(Arc::new(Matcher::builder().build()))
    }

    /// The `Proxy-Authorization` value a request to `uri` carries: set only for a plain HTTP
    /// target forwarded by a proxy with credentials (a tunnel sends them in its `CONNECT`).
    pub fn authorization(&self, uri: &Uri) -> Option<HeaderValue> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        self.0.intercept(uri)?.basic_auth().cloned()
    }
}

/// Opens connections for the pooled client (TLS is layered on top by `hyper-rustls`).
#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector,
    proxies: Proxies,
}

impl Connector {
    pub(super) fn new(tcp: HttpConnector, proxies: Proxies) -> Connector {
        Connector { tcp, proxies }
    }
}

/// A connection, and whether it goes to a forwarding proxy.
pub(super) struct Stream {
    io: TokioIo<TcpStream>,
    forwarded: bool,
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let proxy = self.proxies.0.intercept(&target);
        Box::pin(async move {
            let Some(proxy) = proxy else {
                let io = tcp.call(target).await?;
                return Ok(Stream {
                    io,
                    forwarded: false,
                });
            };
            if proxy.uri().scheme_str() != Some("http") {
                return Err(format!(
                    "the proxy for this target is {}://, and only http:// proxies are supported",
                    proxy.uri().scheme_str().unwrap_or("?")
                )
                .into());
            }
            if target.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.call(target).await.map_err(|e| {
                    let mut text = String::from("cannot open a tunnel through the proxy");
                    crate::outcome::push_causes(&mut text, Some(&e), |err| err.to_string());
                    text
                })?;
                Ok(Stream {
                    io,
                    forwarded: false,
                })
            } else {
                let io = tcp.call(proxy.uri().clone()).await?;
                Ok(Stream {
                    io,
                    forwarded: true,
                })
            }
        })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarded)
    }
}

impl Read for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
