//! Client-only entry point (feature `csr`), built by Trunk for frontend-only
//! iteration: `trunk serve` serves this bundle and proxies `/ws` and `/api/`
//! to a running Tether server (see `Trunk.toml` and the README).

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(tether::app::App);
}
