//! Practice exercise 1 of seed 004: a client-server application over
//! message queues. The server answers on one POSIX queue; each client is a
//! separate process with its own reply queue, and every reply is matched
//! to its request by a correlation id (`memio_ipc::rpc`).
//!
//! ```sh
//! cargo run -p memio-ipc --example rpc_client_server
//! ```
//!
//! From a shell, the same exchange: `memio mq serve /kv` and
//! `memio mq call /kv set colour blue`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memio_ipc::rpc::{Client, Server};

const CLIENTS: u32 = 4;
const CALLS: u32 = 5;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A client process: asks the server to square numbers.
fn client(name: &str, who: u32) -> Res {
    let mut client = Client::connect(name)?;
    for i in 0..CALLS {
        let n = who * 100 + i;
        let reply = client.call(n.to_string().as_bytes(), Duration::from_secs(5))?;
        let square: u64 = std::str::from_utf8(&reply)?.parse()?;
        assert_eq!(square, u64::from(n) * u64::from(n));
        println!("  client {who}: {n}^2 = {square}");
    }
    Ok(())
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("client"), Some(name), Some(who)) =
        (args.get(1).map(String::as_str), args.get(2), args.get(3))
    {
        return client(name, who.parse()?);
    }
    let name = format!("/memio-rpc-example-{}", std::process::id());
    let mut server = Server::create(&name)?;
    let stop = AtomicBool::new(false);
    let exe = std::env::current_exe()?;
    let answered = std::thread::scope(|s| -> Res<u64> {
        let serving = s.spawn(|| {
            server.serve(&stop, &mut |req: &[u8]| {
                let text = std::str::from_utf8(req).map_err(|e| e.to_string())?;
                let n: u64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
                Ok((n * n).to_string().into_bytes())
            })
        });
        let children: Vec<_> = (0..CLIENTS)
            .map(|who| {
                Command::new(&exe)
                    .args(["client", &name, &who.to_string()])
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut failed = 0;
        for mut child in children {
            failed += u32::from(!child.wait()?.success());
        }
        stop.store(true, Ordering::Relaxed);
        let answered = serving.join().map_err(|_| "the server thread panicked")??;
        if failed > 0 {
            return Err(format!("{failed} clients failed").into());
        }
        Ok(answered)
    })?;
    println!("server: answered {answered} requests from {CLIENTS} client processes");
    Ok(())
}
