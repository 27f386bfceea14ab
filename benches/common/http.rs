//! The benches' lean HTTP/1.1 peer: one side of a keep-alive connection with pre-built
//! requests and no client library, as `wrk` would be, so that the daemon under test gets the
//! CPU a real deployment would give it on this two-core machine.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One side of a keep-alive HTTP/1.1 connection that reads whole messages (head and a
/// `Content-Length` body; trigd, its HTTP target client and its Invoke API send no chunked
/// bodies).
pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    pub fn new(stream: TcpStream) -> Peer {
        stream.set_nodelay(true).unwrap();
        Peer {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// The next message: a response's status (0 for a request) and its body; `None` when the
    /// connection closed.
    pub async fn read(&mut self, request: bool) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some((status, head, len)) = parse_head(&self.buf, request)
                && self.buf.len() >= head + len
            {
                let body = self.buf[head..head + len].to_vec();
                self.buf.drain(..head + len);
                return Some((status, body));
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}

/// Status (0 for a request), head length and body length of the message at the start of
/// `buf`, once its head is complete.
fn parse_head(buf: &[u8], request: bool) -> Option<(u16, usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let content_length = |headers: &[httparse::Header<'_>]| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0)
    };
    if request {
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(buf).expect("a well-formed request") {
            httparse::Status::Complete(n) => Some((0, n, content_length(r.headers))),
            httparse::Status::Partial => None,
        }
    } else {
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(buf).expect("a well-formed response") {
            httparse::Status::Complete(n) => {
                Some((r.code.unwrap_or(0), n, content_length(r.headers)))
            }
            httparse::Status::Partial => None,
        }
    }
}
