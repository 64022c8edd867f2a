//! Pass-through on `no-op` endpoints of what is not plain HTTP: WebSocket (a
//! tokio-tungstenite peer on each side) and gRPC (a tonic client, and a tonic service on a
//! loopback HTTP/2 server as the backend).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

// ------------------------------------------------------------------ WebSocket

/// A WebSocket echo server; `close-please` makes it close the connection itself. Returns its
/// address and what it saw (text frames and `closed by client`).
async fn ws_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) if t.as_str() == "close-please" => {
                            log.lock().unwrap().push("closing".into());
                            let _ = ws.close(None).await;
                        }
                        Message::Text(t) => {
                            log.lock().unwrap().push(t.to_string());
                            let _ = ws.send(Message::Text(t)).await;
                        }
                        Message::Binary(b) => {
                            let _ = ws.send(Message::Binary(b)).await;
                        }
                        Message::Close(_) => {
                            log.lock().unwrap().push("closed by client".into());
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn ws_gateway(backend: SocketAddr) -> Gw {
    gateway(&format!(
        "websocketIdleTimeout: 5s\nendpoints:\n- path: /ws\n  timeout: 1s\n  outputEncoding: no-op\n  backends:\n  - hosts: [http://{backend}]\n    urlPattern: /echo\n    encoding: no-op\n"
    ))
    .await
}

async fn ws_client(gw: &Gw) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr()), tcp)
        .await
        .expect("the upgrade goes through the gateway");
    assert_eq!(resp.status(), 101);
    ws
}

async fn next_message(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a frame within 10s")
        .and_then(Result::ok)
}

#[tokio::test]
async fn websocket_frames_flow_both_ways_past_the_endpoint_timeout() {
    let (addr, seen) = ws_backend().await;
    let gw = ws_gateway(addr).await;
    let mut ws = ws_client(&gw).await;
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Text("hello".into()))
    );
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Binary(vec![1u8, 2, 3].into()))
    );
    // Longer than the 1 s endpoint timeout: it bounds the handshake, not the socket.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(Message::Text("still here".into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::Text("still here".into()))
    );
    // The client closes; the backend hears it.
    ws.close(None).await.unwrap();
    while next_message(&mut ws).await.is_some() {}
    for _ in 0..500 {
        if seen.lock().unwrap().iter().any(|s| s == "closed by client") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        seen.lock().unwrap().iter().any(|s| s == "closed by client"),
        "{:?}",
        seen.lock().unwrap()
    );
    let stats = gw.gw.handle.shared().metrics().render();
    assert!(stats.contains("weir_websocket_sessions_total 1"), "{stats}");
}

#[tokio::test]
async fn a_websocket_closed_by_the_backend_closes_for_the_client() {
    let (addr, _) = ws_backend().await;
    let gw = ws_gateway(addr).await;
    let mut ws = ws_client(&gw).await;
    ws.send(Message::Text("close-please".into())).await.unwrap();
    match next_message(&mut ws).await {
        Some(Message::Close(_)) | None => {}
        other => panic!("expected the backend's close, got {other:?}"),
    }
}

// ------------------------------------------------------------------ gRPC

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    msg: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Pong {
    #[prost(string, tag = "1")]
    msg: String,
    #[prost(uint32, tag = "2")]
    n: u32,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type PongStream = Pin<Box<dyn Stream<Item = Result<Pong, tonic::Status>> + Send>>;

struct Unary;

impl tonic::server::UnaryService<Ping> for Unary {
    type Response = Pong;
    type Future = BoxFuture<Result<tonic::Response<Pong>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Ping>) -> Self::Future {
        Box::pin(async move {
            let ping = req.into_inner();
            if ping.msg == "fail" {
                return Err(tonic::Status::not_found("no such thing"));
            }
            Ok(tonic::Response::new(Pong {
                msg: format!("pong: {}", ping.msg),
                n: 0,
            }))
        })
    }
}

struct Count;

impl tonic::server::ServerStreamingService<Ping> for Count {
    type Response = Pong;
    type ResponseStream = PongStream;
    type Future = BoxFuture<Result<tonic::Response<PongStream>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<Ping>) -> Self::Future {
        Box::pin(async move {
            let ping = req.into_inner();
            let stream = futures_util::stream::iter((1..=ping.count).map(move |n| {
                Ok(Pong {
                    msg: ping.msg.clone(),
                    n,
                })
            }));
            Ok(tonic::Response::new(Box::pin(stream) as PongStream))
        })
    }
}

/// A gRPC server speaking HTTP/2 with prior knowledge, as a tonic service.
async fn grpc_backend() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let codec = tonic_prost::ProstCodec::<Pong, Ping>::default();
                    let mut grpc = tonic::server::Grpc::new(codec);
                    let resp = match req.uri().path() {
                        "/test.Echo/Unary" => grpc.unary(Unary, req).await,
                        "/test.Echo/Count" => grpc.server_streaming(Count, req).await,
                        _ => tonic::Status::unimplemented("no such method").into_http(),
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn grpc_client(gw: &Gw) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", gw.addr()))
        .unwrap()
        .connect()
        .await
        .expect("h2c to the gateway");
    tonic::client::Grpc::new(channel)
}

async fn grpc_gateway(backend: SocketAddr) -> Gw {
    gateway(&format!(
        "endpoints:\n- path: /test.Echo/{{method}}\n  method: POST\n  outputEncoding: no-op\n  backends:\n  - hosts: [http://{backend}]\n    urlPattern: /test.Echo/{{method}}\n    encoding: no-op\n    http2: true\n"
    ))
    .await
}

async fn unary(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    msg: &str,
) -> Result<Pong, tonic::Status> {
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(Ping {
                msg: msg.into(),
                count: 0,
            }),
            http::uri::PathAndQuery::from_static("/test.Echo/Unary"),
            tonic_prost::ProstCodec::<Ping, Pong>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_unary_and_server_streaming_pass_through_with_their_trailers() {
    let gw = grpc_gateway(grpc_backend().await).await;
    let mut client = grpc_client(&gw).await;
    assert_eq!(unary(&mut client, "hi").await.unwrap().msg, "pong: hi");
    // The backend's own error arrives in its trailers, untouched.
    let err = unary(&mut client, "fail").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::NotFound, "no such thing")
    );
    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            tonic::Request::new(Ping {
                msg: "tick".into(),
                count: 5,
            }),
            http::uri::PathAndQuery::from_static("/test.Echo/Count"),
            tonic_prost::ProstCodec::<Ping, Pong>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(pong) = stream.message().await.unwrap() {
        got.push(pong.n);
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_backend_failure_is_a_grpc_unavailable_not_a_500() {
    let gw = grpc_gateway(closed_port().await).await;
    let mut client = grpc_client(&gw).await;
    let err = unary(&mut client, "hi").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
}
