//! A TCP proxy for tests, between the driver and a Cassandra node, that loses a request's
//! answer on demand: it forwards CQL frames (protocol v4: a 9-byte header whose last four bytes
//! are the body length) and, when armed, cuts the connection of the next `EXECUTE` request,
//! either after the node has answered it (the request took effect, the client never learns it)
//! or before the node sees it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The opcode of `EXECUTE` (a prepared statement).
const EXECUTE: u8 = 0x0A;

/// What the proxy does to the next `EXECUTE` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The request reaches the node; its answer is dropped and the connection cut.
    LoseAnswer,
    /// The request is dropped and the connection cut before the node sees it.
    LoseRequest,
}

#[derive(Debug, Default)]
struct Shared {
    /// The armed fault, and whether the proxy goes dark (refuses and cuts every connection)
    /// once it has struck.
    armed: Mutex<Option<(Fault, bool)>>,
    dark: AtomicBool,
    /// How many faults struck.
    struck: AtomicU32,
}

/// The proxy; it stops with the test's runtime.
pub(crate) struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `node`.
    pub(crate) async fn start(node: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        // Tells every connection to close at once (when the proxy goes dark).
        let (cut_all, _) = watch::channel(0u64);
        let (s, c) = (shared.clone(), cut_all);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if s.dark.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(node).await else { continue };
                tokio::spawn(connection(client, server, s.clone(), c.clone()));
            }
        });
        Proxy { addr, shared }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Arms `fault` for the next `EXECUTE`; `then_dark`: afterwards, refuse every connection.
    pub(crate) fn arm(&self, fault: Fault, then_dark: bool) {
        *self.shared.armed.lock().unwrap() = Some((fault, then_dark));
    }

    /// How many faults have struck so far.
    pub(crate) fn struck(&self) -> u32 {
        self.shared.struck.load(Ordering::SeqCst)
    }

    /// Serves connections again after going dark.
    pub(crate) fn light(&self) {
        self.shared.dark.store(false, Ordering::SeqCst);
    }

    fn go_dark(shared: &Shared, cut_all: &watch::Sender<u64>) {
        shared.dark.store(true, Ordering::SeqCst);
        cut_all.send_modify(|n| *n += 1);
    }
}

/// One frame: header and body.
async fn read_frame(from: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; 9];
    from.read_exact(&mut frame).await.ok()?;
    let len = u32::from_be_bytes(frame[5..9].try_into().unwrap()) as usize;
    frame.resize(9 + len, 0);
    from.read_exact(&mut frame[9..]).await.ok()?;
    Some(frame)
}

fn stream_of(frame: &[u8]) -> i16 {
    i16::from_be_bytes([frame[2], frame[3]])
}

async fn connection(client: TcpStream, server: TcpStream, shared: Arc<Shared>, cut_all: watch::Sender<u64>) {
    let (mut client_rx, client_tx) = client.into_split();
    let (mut server_rx, server_tx) = server.into_split();
    // The stream id whose answer must be lost, and whether to go dark then.
    let pending: Arc<Mutex<Option<(i16, bool)>>> = Arc::default();
    let (cut_tx, mut cut_rx) = watch::channel(false);
    let mut all_rx = cut_all.subscribe();

    let requests = {
        let (shared, pending, cut_tx, cut_all) = (shared.clone(), pending.clone(), cut_tx.clone(), cut_all.clone());
        let mut server_tx: OwnedWriteHalf = server_tx;
        async move {
            while let Some(frame) = read_frame(&mut client_rx).await {
                if frame[4] == EXECUTE
                    && let Some((fault, dark)) = shared.armed.lock().unwrap().take()
                {
                    match fault {
                        Fault::LoseRequest => {
                            shared.struck.fetch_add(1, Ordering::SeqCst);
                            if dark {
                                Proxy::go_dark(&shared, &cut_all);
                            }
                            let _ = cut_tx.send(true);
                            return;
                        }
                        Fault::LoseAnswer => *pending.lock().unwrap() = Some((stream_of(&frame), dark)),
                    }
                }
                if server_tx.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = cut_tx.send(true);
        }
    };
    let answers = {
        let mut client_tx: OwnedWriteHalf = client_tx;
        async move {
            while let Some(frame) = read_frame(&mut server_rx).await {
                let lose = pending.lock().unwrap().filter(|(stream, _)| *stream == stream_of(&frame));
                if let Some((_, dark)) = lose {
                    shared.struck.fetch_add(1, Ordering::SeqCst);
                    if dark {
                        Proxy::go_dark(&shared, &cut_all);
                    }
                    break;
                }
                if client_tx.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = cut_tx.send(true);
        }
    };
    // Both directions end together: dropping the halves closes both sockets.
    tokio::select! {
        _ = async { tokio::join!(requests, answers) } => {}
        _ = cut_rx.wait_for(|cut| *cut) => {}
        _ = all_rx.changed() => {}
    }
}
