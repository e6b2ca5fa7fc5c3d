import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";
import { OwnServer } from "./support/server";

const SHOTS = "test-results/screens";

/** Every `wordN` of a `[[long]]` reply, once each and in order. */
function expectWordsOnceInOrder(text: string, last: number) {
  const words = text.trim().split(/\s+/);
  expect(words).toEqual(Array.from({ length: last }, (_, i) => `word${i + 1}`));
}

test("a reply cut by a model failure offers Continue and Regenerate; Continue finishes it in the same bubble", async ({
  page,
}) => {
  const chat = new ChatPage(page);
  await chat.open();
  // The fake breaks its stream after three tokens: "You said: hello".
  await chat.send("[[cut:3]] hello there my friend");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await chat.waitForReplyDone();
  const reply = chat.lastAssistant();
  await expect(reply.locator(".content")).toHaveText("You said: hello");
  await expect(reply.locator(".finish")).toHaveText("interrupted");
  await expect(page.getByRole("alert")).toHaveAttribute("data-code", "upstream_error");
  const continueButton = page.getByRole("button", { name: "Continue", exact: true });
  await expect(continueButton).toBeVisible();
  await expect(page.getByRole("button", { name: "↻ Regenerate" })).toBeVisible();
  const id = await reply.getAttribute("data-message-id");
  await page.screenshot({ path: `${SHOTS}/interrupted.png`, fullPage: true });

  // From the keyboard: focus it and press Enter.
  await continueButton.focus();
  await page.keyboard.press("Enter");
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: hello there my friend");
  await chat.waitForReplyDone();
  await expect(chat.assistantMessages()).toHaveCount(1);
  await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", id ?? "");
  await expect(chat.lastAssistant().locator(".finish")).toHaveCount(0);
  await expect(continueButton).toHaveCount(0);
  await expect(page.getByRole("alert")).toHaveCount(0);

  // Stored whole: a reload shows the same.
  await page.reload();
  await expect(chat.status).toHaveAttribute("data-status", "connected");
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: hello there my friend");
  await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", id ?? "");
  await expect(page.getByRole("button", { name: "↻ Regenerate" })).toBeVisible();
  await expect(continueButton).toHaveCount(0);
  chat.expectNoErrors();
});

for (const phone of [false, true]) {
test.describe(phone ? "continue on a phone (390×844)" : "continue after stop", () => {
if (phone) test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
test("a stopped reply can be continued word for word; Regenerate stays on offer", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[long]] go on and on");
  await expect(chat.lastAssistant().locator(".content")).toContainText("word3");
  await page.getByRole("button", { name: "Stop the reply" }).click();
  await chat.waitForReplyDone();
  await expect(chat.lastAssistant().locator(".finish")).toHaveText("stopped");
  await expect(page.getByRole("button", { name: "↻ Regenerate" })).toBeVisible();
  await chat.recordStreamedTexts();
  await page.getByRole("button", { name: "Continue", exact: true }).click();
  await expect(chat.lastAssistant().locator(".content")).toContainText("word60");
  await chat.waitForReplyDone();
  expectWordsOnceInOrder((await chat.lastAssistant().locator(".content").textContent()) ?? "", 60);
  // Every state on the way grew the same text: nothing was shown twice or dropped.
  const texts = await chat.recordedTexts();
  expect(texts.length).toBeGreaterThan(1);
  for (let i = 1; i < texts.length; i++) expect(texts[i].startsWith(texts[i - 1])).toBe(true);
  await expect(chat.assistantMessages()).toHaveCount(1);
  chat.expectNoErrors();
});
});
}

test("after kill -9 and a restart the reply shows what was saved, and Continue completes it", async ({ page }) => {
  // Checkpoints every 4 tokens, so the crash loses little.
  const server = new OwnServer(3111, { CHECKPOINT_TOKENS: "4" });
  await server.start();
  try {
    const chat = new ChatPage(page);
    await page.goto(server.url);
    await expect(chat.status).toHaveAttribute("data-status", "connected");
    await chat.send("[[long]] a story to survive a crash");
    await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
    await expect(chat.lastAssistant().locator(".content")).toContainText("word12");
    await server.kill();
    await expect(chat.status).not.toHaveAttribute("data-status", "connected");
    await server.start();
    await expect(chat.status).toHaveAttribute("data-status", "connected", { timeout: 20_000 });

    // What was checkpointed, marked interrupted, with both ways on.
    const reply = chat.lastAssistant();
    await expect(reply.locator(".finish")).toHaveText("interrupted");
    await expect(reply).toHaveAttribute("aria-busy", "false");
    const saved = ((await reply.locator(".content").textContent()) ?? "").trim().split(/\s+/);
    expect(saved.length).toBeGreaterThanOrEqual(4);
    expect(saved).toEqual(Array.from({ length: saved.length }, (_, i) => `word${i + 1}`));
    await expect(page.getByRole("button", { name: "↻ Regenerate" })).toBeVisible();

    await page.getByRole("button", { name: "Continue", exact: true }).click();
    await expect(chat.lastAssistant().locator(".content")).toContainText("word60");
    await chat.waitForReplyDone();
    expectWordsOnceInOrder((await chat.lastAssistant().locator(".content").textContent()) ?? "", 60);
    await expect(chat.lastAssistant().locator(".finish")).toHaveCount(0);
    chat.expectNoErrors();
  } finally {
    await server.stop();
  }
});

test("Continue works over the HTTP fallback too", async ({ page }) => {
  await page.routeWebSocket(/\/ws$/, (ws) => ws.close());
  const chat = new ChatPage(page);
  await page.goto("/");
  await expect(chat.status).toHaveAttribute("data-status", "http", { timeout: 20_000 });
  await chat.send("[[cut:3]] over plain requests please");
  await chat.waitForReplyDone();
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: over");
  await page.getByRole("button", { name: "Continue", exact: true }).click();
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: over plain requests please");
  await chat.waitForReplyDone();
  await page.reload();
  await expect(chat.status).toHaveAttribute("data-status", "http", { timeout: 20_000 });
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: over plain requests please");
  chat.expectNoErrors();
});
