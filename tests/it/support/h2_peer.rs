//! `StrictH2Upstream`: an h2c (prior knowledge) server on 127.0.0.1:0, written on the `h2` crate
//! because hyper's server accepts whatever `host` a request carries.
//!
//! RFC 9113 §8.3.1: a client that sends `host` must send the same value as `:authority`; an
//! intermediary that translates a request should send `:authority` and no `host` at all. This
//! server is stricter than python-h2 on purpose: a request with **any** `host` header is answered
//! `400` (and recorded), so a gateway that sends one cannot pass. Every other request gets
//! `200 ok`. Each request's `:authority`, path and `host` values are recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use tokio::net::TcpListener;

/// What the strict upstream received.
#[derive(Clone, Debug)]
pub(crate) struct H2Received {
    /// `:authority`, if the request had one.
    pub(crate) authority: Option<String>,
    /// The path and query (`:path`).
    pub(crate) path: String,
    /// Every `host` header value (there should be none).
    pub(crate) hosts: Vec<String>,
    pub(crate) headers: HeaderMap,
}

#[derive(Debug)]
pub(crate) struct StrictH2Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) received: Arc<Mutex<Vec<H2Received>>>,
}

impl StrictH2Upstream {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(stream).await else {
                        return;
                    };
                    while let Some(Ok((req, respond))) = connection.accept().await {
                        answer(&req, respond, &log);
                    }
                });
            }
        });
        Self { addr, received }
    }

    /// The last request received.
    pub(crate) fn last(&self) -> H2Received {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the HTTP/2 upstream got a request")
    }

    pub(crate) fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

fn answer(
    req: &Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    log: &Mutex<Vec<H2Received>>,
) {
    let hosts = super::raw::values(req.headers(), "host");
    let refused = !hosts.is_empty();
    log.lock().unwrap().push(H2Received {
        authority: req.uri().authority().map(|a| a.as_str().to_owned()),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(String::new, |pq| pq.as_str().to_owned()),
        hosts,
        headers: req.headers().clone(),
    });
    let (status, body) = if refused {
        (
            400,
            "a host header reached an HTTP/2 upstream (RFC 9113 §8.3.1)",
        )
    } else {
        (200, "ok")
    };
    let response = Response::builder().status(status).body(()).unwrap();
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(Bytes::from_static(body.as_bytes()), true);
    }
}
