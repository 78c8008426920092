//! The demo service's program: a tiny HTTP server that says which task answered. Replicas share
//! the port with SO_REUSEPORT, so the kernel spreads connections across them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

pub fn main(a: DemoArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo-http: {e}");
            return 1;
        }
    };
    match rt.block_on(serve(a.port)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("demo-http: port {}: {e}", a.port);
            1
        }
    }
}

async fn serve(port: u16) -> std::io::Result<()> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_reuseport(true)?;
    sock.set_reuseaddr(true)?;
    sock.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    let listener = sock.listen(128)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim().to_string();
    println!("demo-http: task {host} listening on :{port}");
    loop {
        let (mut conn, peer) = listener.accept().await?;
        let host = host.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            println!("demo-http: {peer} GET {path}");
            let body = format!(
                "Hello from shoal! This is task {host} (pid {}), you asked for {path}\n",
                std::process::id()
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}
