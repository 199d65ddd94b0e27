//! SPEC §3: gRPC through the gateway. A real tonic client calls a real tonic server (h2c)
//! behind an `upstream_protocol = "http2"` route, unary and server-streaming, with the
//! gateway's token check in between.

use std::convert::Infallible;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use futures_util::Stream;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::server::{Grpc as GrpcServer, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::support::{material, Options, TestGateway, ALICE};

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Pong {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    index: u32,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Answers with the caller the gateway vouched for.
struct Unary;

impl UnaryService<Ping> for Unary {
    type Response = Pong;
    type Future = BoxFuture<Result<Response<Pong>, Status>>;

    fn call(&mut self, request: Request<Ping>) -> Self::Future {
        let user = request
            .metadata()
            .get("x-auth-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody")
            .to_owned();
        let ping = request.into_inner();
        Box::pin(async move {
            Ok(Response::new(Pong {
                text: format!("{user}: {}", ping.text),
                index: 0,
            }))
        })
    }
}

/// Streams `count` replies, 20 ms apart.
struct Streamer;

impl ServerStreamingService<Ping> for Streamer {
    type Response = Pong;
    type ResponseStream = Pin<Box<dyn Stream<Item = Result<Pong, Status>> + Send>>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Ping>) -> Self::Future {
        let ping = request.into_inner();
        Box::pin(async move {
            let stream = futures_util::stream::unfold(0u32, move |i| {
                let text = ping.text.clone();
                async move {
                    if i >= ping.count {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok(Pong { text, index: i }), i + 1))
                }
            });
            Ok(Response::new(Box::pin(stream) as Self::ResponseStream))
        })
    }
}

/// A tonic server on h2c at 127.0.0.1:0.
async fn grpc_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<Incoming>| async move {
                    let response = match req.uri().path() {
                        "/test.Echo/Unary" => {
                            GrpcServer::new(ProstCodec::<Pong, Ping>::default())
                                .unary(Unary, req)
                                .await
                        }
                        _ => {
                            GrpcServer::new(ProstCodec::<Pong, Ping>::default())
                                .server_streaming(Streamer, req)
                                .await
                        }
                    };
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A tonic client speaking HTTP/2 over TLS to the gateway.
fn grpc_client(
    gw: &TestGateway,
) -> tonic::client::Grpc<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        tonic::body::Body,
    >,
> {
    let tls = crate::support::client_tls_config(&material().cert_pem);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let origin = http::Uri::from_str(&format!("https://localhost:{}", gw.addr.port())).unwrap();
    tonic::client::Grpc::with_origin(client, origin)
}

fn authorized(ping: Ping, access: &str) -> Request<Ping> {
    let mut request = Request::new(ping);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {access}").parse().unwrap());
    request
}

#[tokio::test]
async fn grpc_unary_and_streaming_calls_pass_the_gateway() {
    let upstream = grpc_upstream().await;
    let routes = format!(
        "[[routes]]\nname = \"grpc\"\npath_prefix = \"/test.Echo\"\nupstream_protocol = \"http2\"\n\
         upstreams = [\"http://{upstream}\"]\n"
    );
    let gw = TestGateway::start(
        upstream,
        Options {
            routes,
            ..Options::default()
        },
    )
    .await;
    let tokens = gw.login(ALICE).await;
    let mut grpc = grpc_client(&gw);

    grpc.ready().await.unwrap();
    let ping = Ping {
        text: "hello".to_owned(),
        count: 0,
    };
    let reply = grpc
        .unary(
            authorized(ping, &tokens.access),
            PathAndQuery::from_static("/test.Echo/Unary"),
            ProstCodec::<Ping, Pong>::default(),
        )
        .await
        .unwrap();
    assert_eq!(reply.into_inner().text, "alice: hello");

    grpc.ready().await.unwrap();
    let ping = Ping {
        text: "tick".to_owned(),
        count: 5,
    };
    let mut stream = grpc
        .server_streaming(
            authorized(ping, &tokens.access),
            PathAndQuery::from_static("/test.Echo/Stream"),
            ProstCodec::<Ping, Pong>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut indices = Vec::new();
    while let Some(pong) = stream.message().await.unwrap() {
        assert_eq!(pong.text, "tick");
        indices.push(pong.index);
    }
    assert_eq!(
        indices,
        [0, 1, 2, 3, 4],
        "every message, then grpc-status 0 in the trailers"
    );

    // Without a token the call never reaches the server: the gateway's 401 is a gRPC error.
    grpc.ready().await.unwrap();
    let err = grpc
        .unary(
            Request::new(Ping {
                text: "x".to_owned(),
                count: 0,
            }),
            PathAndQuery::from_static("/test.Echo/Unary"),
            ProstCodec::<Ping, Pong>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}
