//! HTTP/2 clients for the protocol tests: hyper's, over a socket of any kind (cleartext
//! with prior knowledge, or a TLS stream that chose `h2`), and h2's own, for the frames a
//! well-behaved client never sends.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::Reply;

/// A hyper HTTP/2 connection on `io`.
pub async fn over<I>(io: I) -> SendRequest<Full<Bytes>>
where
    I: Read + Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}

/// A cleartext HTTP/2 connection with prior knowledge (h2c).
pub async fn h2c(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    over(TokioIo::new(stream)).await
}

/// An HTTP/2 request for `path` on `authority`, with `body`.
pub fn request(method: &str, authority: &str, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .body(Full::new(body))
        .expect("request")
}

/// Sends `req` on `sender` and reads the whole response.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> hyper::Result<Reply> {
    Reply::read(sender.send_request(req).await?).await
}

/// GET `path` on a connection to `addr`.
pub async fn get(sender: &mut SendRequest<Full<Bytes>>, addr: SocketAddr, path: &str) -> Reply {
    send(
        sender,
        request("GET", &addr.to_string(), path, Bytes::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("HTTP/2 GET {path}: {e}"))
}

/// An h2 client connection with prior knowledge, for frames hyper's client would not send;
/// its connection task's end is the receiver's value.
pub async fn raw_h2c(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    (sender, tokio::spawn(connection))
}
