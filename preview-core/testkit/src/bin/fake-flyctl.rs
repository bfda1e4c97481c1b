//! A stand-in for `flyctl proxy LOCAL:REMOTE -a APP`, for the tunnel and end-to-end tests.
//! Tests get its path from [`preview_testkit::fake_flyctl`]; it is never published.
//!
//! It listens on `127.0.0.1:LOCAL` and relays each connection to `$FAKE_FLYCTL_TARGET:REMOTE`
//! (default `127.0.0.1`), like the real proxy does over WireGuard. It refuses to start without
//! `FLY_API_TOKEN` in its environment, and appends its argv to `$FAKE_FLYCTL_LOG` when set, so
//! tests can check the token never travels in argv.
#![allow(clippy::print_stderr)]

use std::io::Write;

fn fail(msg: &str) -> ! {
    eprintln!("fake-flyctl: {msg}");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(log) = std::env::var("FAKE_FLYCTL_LOG") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| fail(&format!("cannot open log: {e}")));
        let _ = writeln!(f, "{}", args.join(" "));
    }
    if std::env::var("FLY_API_TOKEN").map_or(true, |t| t.is_empty()) {
        fail("FLY_API_TOKEN is not set");
    }
    let (ports, app) = match args.as_slice() {
        [cmd, ports, flag, app] if cmd == "proxy" && flag == "-a" => (ports, app),
        _ => fail("usage: fake-flyctl proxy LOCAL:REMOTE -a APP"),
    };
    let _ = app;
    let (local, remote) = ports
        .split_once(':')
        .and_then(|(l, r)| Some((l.parse::<u16>().ok()?, r.parse::<u16>().ok()?)))
        .unwrap_or_else(|| fail("ports must be LOCAL:REMOTE"));
    let target = std::env::var("FAKE_FLYCTL_TARGET").unwrap_or_else(|_| "127.0.0.1".into());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", local))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {local}: {e}")));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            // Nothing behind the proxy: accept, then close, as flyctl does.
            if let Ok(mut outbound) =
                tokio::net::TcpStream::connect((target.as_str(), remote)).await
            {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
