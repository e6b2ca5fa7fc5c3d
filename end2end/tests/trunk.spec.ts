import { spawn } from "node:child_process";
import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";
import { OwnServer } from "./support/server";

/**
 * The client-only Trunk build (`trunk serve`, Trunk.toml) against a real
 * server through Trunk's proxy: identity from /api/session, the socket via
 * the /ws proxy, a streamed reply. Uses the ports Trunk.toml names (3000 for
 * the server, 8080 for Trunk).
 */
test("the Trunk client-only build talks to a running server through its proxy", async ({ page }) => {
  test.setTimeout(240_000);
  const server = new OwnServer(3000, {
    ALLOWED_ORIGINS: "http://127.0.0.1:3000,http://127.0.0.1:8080",
  });
  await server.start();
  const trunk = spawn("trunk", ["serve", "--no-autoreload"], {
    cwd: "..",
    env: process.env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    const deadline = Date.now() + 200_000;
    for (;;) {
      if (trunk.exitCode !== null) throw new Error(`trunk exited with ${trunk.exitCode}`);
      try {
        if ((await fetch("http://127.0.0.1:8080/")).ok) break;
      } catch {
        // still building
      }
      if (Date.now() > deadline) throw new Error("trunk serve did not answer");
      await new Promise((r) => setTimeout(r, 250));
    }
    const chat = new ChatPage(page);
    await page.goto("http://127.0.0.1:8080/");
    await expect(chat.status).toHaveAttribute("data-status", "connected", { timeout: 20_000 });
    await chat.send("hello through trunk");
    await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: hello through trunk");
    await chat.waitForReplyDone();
  } finally {
    const exited = new Promise((r) => trunk.once("exit", r));
    trunk.kill("SIGTERM");
    await exited;
    await server.stop();
  }
});
