//! The `tether` server binary: configuration, telemetry, `server::run`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether::server::{
    self,
    config::{Cli, Config},
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: the server allocates and frees small
/// buffers for every frame and token, and glibc's allocator was the largest
/// single cost per message (docs/performance.md, issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the server; a failure (a setting that cannot be used, a port that is
/// taken, storage that cannot be opened) is one line on stderr and exit 1,
/// without a backtrace even where `RUST_BACKTRACE` is set.
fn main() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tether: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tether: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli)?;
    if cli.print_config {
        println!("store: {}", config.database.describe());
        println!("{config:#?}");
        return Ok(());
    }
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hyper=warn,tower_http=warn"));
    if config.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
    let (addr, upstream, model, database) = (
        config.listen_addr,
        config.upstream.base_url.to_string(),
        config.upstream.model.clone(),
        config.database.describe(),
    );
    // Bound first (a taken port ends the start at once), announced once the
    // database and the live state are connected: the line means it serves.
    let state = server::build_state(config).await?;
    tracing::info!(%addr, %upstream, %model, %database, "tether listening on http://{addr}");
    server::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
