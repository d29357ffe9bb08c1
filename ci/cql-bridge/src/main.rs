//! `cql-bridge` binary: parses the command line, sets up stderr logging, runs the v4-to-v3
//! bridge until SIGTERM or Ctrl-C (then exits 0).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use cql_bridge::{BridgeConfig, DEFAULT_MAX_FRAME_BYTES};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Proxy letting CQL native protocol v4 clients (scylla 1.9.0 driver) talk to a v3-only
/// server (Apache Cassandra 2.1). Logs go to stderr; set RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(name = "cql-bridge", version, about)]
struct Args {
    /// Address to accept v4 clients on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:19042")]
    listen: SocketAddr,

    /// Address of the v3 server (Cassandra 2.1 native transport).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:19142")]
    upstream: SocketAddr,

    /// IPv4 reported as rpc_address in system.local results. Drivers open their connection
    /// pools to this address (on the port they first used), so it must reach this bridge.
    /// Default: the --listen IP if it is a specific IPv4, else the --upstream IP if it is,
    /// else 127.0.0.1.
    #[arg(long, value_name = "IPV4")]
    advertise_ip: Option<Ipv4Addr>,

    /// Largest accepted frame body in bytes (either direction); larger frames close the
    /// connection.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FRAME_BYTES,
          value_parser = parse_max_frame)]
    max_frame_bytes: usize,
}

fn parse_max_frame(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 0 || n > i32::MAX as usize {
        return Err(format!("must be between 1 and {}", i32::MAX));
    }
    Ok(n)
}

/// The advertised IP when none is given: an address where this bridge is reachable.
fn default_advertise_ip(listen: SocketAddr, upstream: SocketAddr) -> Ipv4Addr {
    let specific = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    };
    match (specific(listen.ip()), specific(upstream.ip())) {
        (Some(l), _) => l,
        (None, Some(u)) => u,
        (None, None) => Ipv4Addr::LOCALHOST,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received, stopping"),
                    _ = tokio::signal::ctrl_c() => info!("Ctrl-C received, stopping"),
                }
            }
            Err(e) => {
                error!("cannot install the SIGTERM handler: {e}; only Ctrl-C stops the bridge");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received, stopping");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut config = BridgeConfig::new(args.upstream);
    config.advertise_ip = args
        .advertise_ip
        .unwrap_or_else(|| default_advertise_ip(args.listen, args.upstream));
    config.max_frame_bytes = args.max_frame_bytes;

    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            error!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| args.listen.to_string(), |a| a.to_string());
    info!(
        listen = %local,
        upstream = %config.upstream,
        advertise_ip = %config.advertise_ip,
        max_frame_bytes = config.max_frame_bytes,
        "cql-bridge ready"
    );
    match cql_bridge::serve_with_shutdown(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
