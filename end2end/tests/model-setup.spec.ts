import { expect, test } from "@playwright/test";
import * as fs from "node:fs";
import { ChatPage } from "./pages/chat-page";

/**
 * The local model installing in the background (scripts/local-model.sh
 * writes its status file; here the spec is that "installer"): the page says
 * which step it is on and for how long, holds a message sent meanwhile and
 * answers it once the model is ready; a failed install says why and what to
 * do. The server follows MODEL_SETUP_FILE (playwright.config.ts); no file
 * means ready, so every other spec runs with the model ready.
 */
const STATUS = process.env.TETHER_MODEL_SETUP_FILE ?? "";

function writeStatus(status: object) {
  fs.writeFileSync(`${STATUS}.tmp`, JSON.stringify(status));
  fs.renameSync(`${STATUS}.tmp`, STATUS);
}

const startedAt = () => Math.floor(Date.now() / 1000) - 250;

test.afterEach(() => fs.rmSync(STATUS, { force: true }));

test("the page follows the model's set-up and answers a held message once it is ready", async ({ page }) => {
  expect(STATUS, "playwright.config.ts sets TETHER_MODEL_SETUP_FILE").not.toBe("");
  writeStatus({ state: "installing", step: 2, steps: 3, label: "Building llama.cpp", started_at: startedAt() });
  const chat = new ChatPage(page);
  await chat.open();
  const notice = page.locator(".model-setup");
  await expect(notice).toContainText("Setting up the local model");
  await expect(notice).toContainText("step 2 of 3 (Building llama.cpp), 4 min so far");
  await page.screenshot({ path: "test-results/model-setup.png" });

  await chat.send("are you there yet?");
  await expect(chat.userMessages().last()).toContainText("are you there yet?");
  // The next step shows up without a reload.
  writeStatus({ state: "installing", step: 3, steps: 3, label: "Loading SmolLM2", started_at: startedAt() });
  await expect(notice).toContainText("step 3 of 3 (Loading SmolLM2)");
  await expect(page.getByText("You said: are you there yet?")).toHaveCount(0);

  writeStatus({ state: "ready" });
  await expect(notice).toHaveCount(0);
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: are you there yet?");
  await chat.waitForReplyDone();
});

test("a failed set-up says why and how to use another provider", async ({ page }) => {
  writeStatus({ state: "installing", step: 1, steps: 3, label: "Building llama.cpp", started_at: startedAt() });
  const chat = new ChatPage(page);
  await chat.open();
  await expect(page.locator(".model-setup")).toContainText("step 1 of 3");
  writeStatus({ state: "failed", reason: "pip could not install llama-cpp-python" });
  const notice = page.locator(".model-setup[data-state=failed]");
  await expect(notice).toContainText("could not be set up: pip could not install llama-cpp-python");
  await expect(notice).toContainText("OPENAI_BASE_URL");
  await expect(notice).toHaveAttribute("role", "alert");
});
