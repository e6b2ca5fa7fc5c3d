import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TARGET = process.env.CARGO_TARGET_DIR ?? "../target";
const FAKE_PORT = process.env.FAKE_PORT ?? "19100";

/**
 * A Tether server of the test's own (its own port and data directory), for
 * specs that stop and start it. Talks to the fake upstream the config starts.
 */
export class OwnServer {
  readonly dataDir = mkdtempSync(join(tmpdir(), "tether-e2e-"));
  private child?: ChildProcess;

  constructor(
    readonly port: number,
    private readonly extraEnv: Record<string, string> = {},
    /** The server binary (default: the one `cargo leptos build` made). */
    private readonly bin: string = `${TARGET}/debug/tether`,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the binary and resolves once `/healthz` answers. */
  async start(): Promise<void> {
    this.child = spawn(this.bin, [], {
      env: {
        ...process.env,
        LISTEN_ADDR: `127.0.0.1:${this.port}`,
        OPENAI_BASE_URL: `http://127.0.0.1:${FAKE_PORT}/v1`,
        OPENAI_MODEL: "fake",
        OPENAI_API_KEY: "",
        TETHER_DATA_DIR: this.dataDir,
        LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? "../target/site",
        RUST_LOG: "warn",
        ...this.extraEnv,
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`tether exited with ${this.child.exitCode}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("tether did not become healthy in 30 s");
      // Poll interval while waiting for the port: readiness is checked, not assumed.
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills the server (SIGKILL: no drain, as a crash) and waits for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }

  /** Stops the server (SIGTERM: graceful drain) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
}
