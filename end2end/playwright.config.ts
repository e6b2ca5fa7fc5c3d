import { defineConfig, devices } from "@playwright/test";
import * as os from "node:os";

/**
 * Starts the real server binary (built by `cargo leptos build`) and the fake
 * OpenAI upstream, each as its own process on loopback, then drives the app.
 * Chromium is Debian's (`/usr/bin/chromium`): Playwright's own browser
 * download is not reachable from this machine.
 */
const TETHER_ADDR = process.env.TETHER_E2E_ADDR ?? "127.0.0.1:3100";
const BASE_URL = `http://${TETHER_ADDR}`;
const FAKE_PORT = process.env.FAKE_PORT ?? "19100";
const TARGET = process.env.CARGO_TARGET_DIR ?? "../target";
/**
 * Set (by scripts/test.sh) to the URL of a cluster started outside Playwright
 * (scripts/cluster.sh: HAProxy in front of two instances on PostgreSQL and
 * Redis, with the fake model): then only the `cluster` project runs, against
 * it, and no server is started here.
 */
const CLUSTER_URL = process.env.TETHER_CLUSTER_URL;
/**
 * The server binary (default: the one `cargo leptos build` made). Set by
 * scripts/test.sh to the packaged one-file binary (scripts/package.sh),
 * with TETHER_E2E_CWD an empty directory and LEPTOS_SITE_ROOT a missing
 * one: the site then comes from inside the binary (and TETHER_E2E_EMBEDDED=1,
 * so that streaming.spec.ts checks the embedded site's versioned files).
 */
const TETHER_BIN = process.env.TETHER_BIN ?? `${TARGET}/debug/tether`;
const CLUSTER_SPEC = /cluster\.spec\.ts$/;
/** Bench rows written as specs (bench/long.sh): only run when asked for. */
const BENCH_SPEC = /\.bench\.spec\.ts$/;
/**
 * The status file of a model "installing" in the background, which the
 * server follows (MODEL_SETUP_FILE) and tests/model-setup.spec.ts writes; it
 * does not exist otherwise, which means ready. Set here so that the spec's
 * workers inherit it.
 */
process.env.TETHER_MODEL_SETUP_FILE ??= `${os.tmpdir()}/tether-e2e-model-setup-${process.pid}.json`;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: BASE_URL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: CLUSTER_URL
    ? [{ name: "cluster", testMatch: CLUSTER_SPEC, use: { ...devices["Desktop Chrome"], baseURL: CLUSTER_URL } }]
    : [{
        name: "chromium",
        testIgnore: process.env.TETHER_LONG ? [CLUSTER_SPEC] : [CLUSTER_SPEC, BENCH_SPEC],
        use: { ...devices["Desktop Chrome"] },
      }],
  webServer: CLUSTER_URL ? undefined : [
    {
      // The fake is a workspace member of its own (crates/fake-upstream) that
      // `cargo leptos build` does not build. Selecting `tether` too keeps the
      // server's dependency features, so only the fake itself is compiled.
      command:
        "cargo build --quiet -p tether -p tether-fake-upstream --features ssr --bin fake-upstream" +
        ` && exec ${TARGET}/debug/fake-upstream`,
      // Two models, so that the model picker shows (tests/models.spec.ts).
      env: { FAKE_ADDR: `127.0.0.1:${FAKE_PORT}`, FAKE_FIRST_MS: "150", FAKE_DELAY_MS: "60", FAKE_MODELS: "fake-large" },
      url: `http://127.0.0.1:${FAKE_PORT}/v1/models`,
      reuseExistingServer: false,
      timeout: 180_000,
    },
    {
      command: TETHER_BIN,
      cwd: process.env.TETHER_E2E_CWD,
      env: {
        LISTEN_ADDR: TETHER_ADDR,
        OPENAI_BASE_URL: `http://127.0.0.1:${FAKE_PORT}/v1`,
        OPENAI_MODEL: "fake",
        OPENAI_API_KEY: "",
        TETHER_DATA_DIR: process.env.TETHER_DATA_DIR ?? "./.tmp/data",
        LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? "../target/site",
        RUST_LOG: "warn",
        MODEL_SETUP_FILE: process.env.TETHER_MODEL_SETUP_FILE,
        // Every spec's browser is a new visitor from 127.0.0.1: the suite
        // would exhaust one address's new-identity budget (IDENTITY_BURST).
        IDENTITY_BURST: "100000",
      },
      url: `${BASE_URL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
    },
  ],
});
