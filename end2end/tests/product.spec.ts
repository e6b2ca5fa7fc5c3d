import { mkdirSync, writeFileSync } from "node:fs";
import { expect, test } from "@playwright/test";
import { ChatPage, timeToInteractive } from "./pages/chat-page";
import { OwnServer } from "./support/server";

const SHOTS = "test-results/screens";
mkdirSync(SHOTS, { recursive: true });

/** Every `wordN` of a `[[long]]` reply, once each and in order. */
function expectWordsOnceInOrder(text: string, last: number) {
  const words = text.trim().split(/\s+/);
  expect(words).toEqual(Array.from({ length: last }, (_, i) => `word${i + 1}`));
}

test("reload mid-stream: the rest continues, nothing lost or doubled", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[long]] tell me a long story");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await expect(chat.lastAssistant().locator(".content")).toContainText("word5");
  await page.reload();
  // The server-rendered page already holds the partial reply.
  await expect(chat.status).toHaveAttribute("data-status", "connected");
  await expect(chat.lastAssistant().locator(".content")).toContainText("word60");
  await chat.waitForReplyDone();
  expectWordsOnceInOrder((await chat.lastAssistant().locator(".content").textContent()) ?? "", 60);
  await expect(chat.assistantMessages()).toHaveCount(1);
  chat.expectNoErrors();
});

test("two tabs on one conversation stay in sync", async ({ page, context }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("hello from the first tab");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await chat.waitForReplyDone();

  const other = new ChatPage(await context.newPage());
  await other.page.goto(page.url());
  await expect(other.status).toHaveAttribute("data-status", "connected");
  await expect(other.assistantMessages()).toHaveCount(1);

  await other.send("and hello from the second");
  await expect(chat.userMessages().last()).toHaveText(/and hello from the second/);
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: and hello from the second");
  await expect(other.lastAssistant().locator(".content")).toHaveText("You said: and hello from the second");
  await expect(chat.assistantMessages()).toHaveCount(2);
  await expect(other.assistantMessages()).toHaveCount(2);
  chat.expectNoErrors();
  other.expectNoErrors();
});

test("Regenerate replaces the last reply", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("say it again");
  await chat.waitForReplyDone();
  const firstId = await chat.lastAssistant().getAttribute("data-message-id");
  await page.getByRole("button", { name: "↻ Regenerate" }).click();
  await expect(chat.lastAssistant()).not.toHaveAttribute("data-message-id", firstId ?? "");
  await chat.waitForReplyDone();
  await expect(chat.assistantMessages()).toHaveCount(1);
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: say it again");
});

test("a conversation's page is server-rendered: readable without JavaScript", async ({ page, browser }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("remember the harbour");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await chat.waitForReplyDone();

  const noJs = await browser.newContext({
    javaScriptEnabled: false,
    storageState: await page.context().storageState(),
  });
  const plain = await noJs.newPage();
  await plain.goto(page.url());
  await expect(plain.locator('article.message[data-role="assistant"] .content')).toHaveText(
    "You said: remember the harbour",
  );
  // Someone else's cookie gets nothing.
  const stranger = await browser.newContext({ javaScriptEnabled: false });
  const theirs = await stranger.newPage();
  await theirs.goto(page.url());
  await expect(theirs.locator("article.message")).toHaveCount(0);
  await noJs.close();
  await stranger.close();
});

test("copy buttons put a message and a code block on the clipboard", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[markdown]] some code please");
  await chat.waitForReplyDone();
  const reply = chat.lastAssistant();
  await expect(reply.locator(".hl-kw").first()).toHaveText("fn");
  await reply.getByRole("button", { name: "Copy code" }).click();
  await expect(reply.getByRole("button", { name: "Copy code" })).toHaveText("Copied");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe('fn main() {\n    println!("hi");\n}\n');
  await reply.hover();
  await reply.getByRole("button", { name: "Copy message" }).click();
  await expect(reply.getByRole("button", { name: "Copy message" })).toHaveText("Copied");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toContain("Here is **bold**");
  await page.screenshot({ path: `${SHOTS}/code-block.png`, fullPage: true });
});

test("scrolling up stops auto-scroll; Jump to latest comes back", async ({ page }) => {
  await page.setViewportSize({ width: 900, height: 420 });
  const chat = new ChatPage(page);
  await chat.open();
  for (const n of [1, 2]) {
    await chat.send(`[[long]] story ${n}`);
    await chat.waitForReplyDone();
  }
  await chat.send("[[long]] [[delay:40]] one more");
  await expect(chat.lastAssistant().locator(".content")).toContainText("word2");
  const list = page.locator(".messages");
  await list.evaluate((el) => el.scrollTo({ top: 0 }));
  const jump = page.getByRole("button", { name: "↓ Jump to latest" });
  await expect(jump).toBeVisible();
  await chat.waitForReplyDone();
  // Still where the user left it.
  expect(await list.evaluate((el) => el.scrollTop)).toBeLessThan(50);
  await jump.click();
  await expect(jump).toHaveCount(0);
  // Back at the bottom, and it stays there.
  await expect
    .poll(() => list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight))
    .toBeLessThan(48);
});

test("a failed reply shows a dismissible error with Retry", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[status:500]] this will fail");
  const notice = page.getByRole("alert");
  await expect(notice).toHaveAttribute("data-code", "upstream_error");
  await expect(notice.getByRole("button", { name: "Retry" })).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/error.png`, fullPage: true });
  await notice.getByRole("button", { name: "Dismiss" }).click();
  await expect(page.getByRole("alert")).toHaveCount(0);
});

test("a server restart keeps the history and the page reconnects by itself", async ({ page }) => {
  const server = new OwnServer(3107);
  await server.start();
  try {
    const chat = new ChatPage(page);
    await page.goto(server.url);
    await expect(chat.status).toHaveAttribute("data-status", "connected");
    await chat.send("before the restart");
    await chat.waitForReplyDone();
    await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);

    await server.stop();
    await expect(chat.status).toHaveAttribute("data-status", "reconnecting");
    // Several failed attempts later it says so plainly (and keeps trying).
    await expect(chat.status).toHaveAttribute("data-status", "offline");
    await expect(chat.status).toHaveText("Offline — retrying");
    // Sent while offline: shown as pending, delivered once when back.
    await chat.send("sent while offline");
    await expect(page.locator("article.message.pending")).toHaveCount(1);
    await chat.input.fill("a draft survives");
    await page.screenshot({ path: `${SHOTS}/reconnecting.png` });
    await server.start();
    await expect(chat.status).toHaveAttribute("data-status", "connected", { timeout: 20_000 });
    await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: sent while offline");
    await chat.waitForReplyDone();
    await expect(chat.input).toHaveValue("a draft survives");
    await expect(chat.assistantMessages().first().locator(".content")).toHaveText("You said: before the restart");
    await expect(chat.userMessages()).toHaveCount(2);
    chat.expectNoErrors();
  } finally {
    await server.stop();
  }
});

test("keyboard only: write, send, and reach the reply's actions", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  // Tab from the top of the page until the message box has focus.
  for (let i = 0; i < 20; i++) {
    if (await chat.input.evaluate((el) => el === document.activeElement)) break;
    await page.keyboard.press("Tab");
  }
  await expect(chat.input).toBeFocused();
  await page.keyboard.type("only keys");
  await page.keyboard.press("Enter");
  await chat.waitForReplyDone();
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: only keys");
  // Shift+Tab back into the conversation reaches Regenerate; Enter activates it.
  let reached = false;
  for (let i = 0; i < 10 && !reached; i++) {
    await page.keyboard.press("Shift+Tab");
    reached = await page.evaluate(() => document.activeElement?.classList.contains("regenerate") ?? false);
  }
  expect(reached).toBe(true);
  const firstId = await chat.lastAssistant().getAttribute("data-message-id");
  await page.keyboard.press("Enter");
  await expect(chat.lastAssistant()).not.toHaveAttribute("data-message-id", firstId ?? "");
  await chat.waitForReplyDone();
});

test("dark mode follows the system, and the toggle wins and persists", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "dark" });
  const chat = new ChatPage(page);
  await chat.open();
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(await background()).toBe("rgb(21, 19, 20)");
  await chat.send("[[markdown]] in the dark");
  await chat.waitForReplyDone();
  await page.screenshot({ path: `${SHOTS}/dark.png`, fullPage: true });
  await page.getByRole("button", { name: "Switch to light theme" }).click();
  expect(await background()).toBe("rgb(247, 245, 242)");
  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "light");
  expect(await background()).toBe("rgb(247, 245, 242)");
  await expect(page.getByRole("button", { name: "Switch to dark theme" })).toBeVisible();
});

test.describe("on a phone (390×844)", () => {
  test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

  test("the sidebar hides behind a button and the chat works", async ({ page }) => {
    const chat = new ChatPage(page);
    await chat.open();
    const sidebar = page.getByRole("navigation", { name: "Conversations" });
    await expect(sidebar).not.toBeInViewport();
    await chat.send("hello from a phone");
    await chat.waitForReplyDone();
    await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: hello from a phone");
    // Nothing sticks out sideways.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SHOTS}/mobile-chat.png` });
    await page.getByRole("button", { name: "Show conversations" }).click();
    await expect(sidebar).toBeInViewport();
    await expect(sidebar.getByRole("link", { name: "hello from a phone" })).toBeVisible();
    await page.screenshot({ path: `${SHOTS}/mobile-sidebar.png` });
    await page.keyboard.press("Escape");
    await expect(sidebar).not.toBeInViewport();
    await page.getByRole("button", { name: "Show conversations" }).click();
    await expect(sidebar).toBeInViewport();
    await sidebar.getByRole("link", { name: "+ New chat" }).click();
    await expect(sidebar).not.toBeInViewport();
    await expect(page).toHaveURL(/\/$/);
  });
});

test("time to interactive on the local server is measured", async ({ page }, info) => {
  const tti = await timeToInteractive(page);
  await page.screenshot({ path: `${SHOTS}/empty.png` });
  info.annotations.push({ type: "time-to-interactive-ms", description: tti.toFixed(0) });
  writeFileSync("test-results/time-to-interactive.json", JSON.stringify({ tti_ms: tti }, null, 2));
  console.log(`time to interactive: ${tti.toFixed(0)} ms`);
  expect(tti).toBeGreaterThan(0);
});

test("without WebSockets the chat carries on over HTTP streaming", async ({ page }) => {
  // A proxy that drops every upgrade: the socket closes before its hello.
  await page.routeWebSocket(/\/ws$/, (ws) => ws.close());
  const chat = new ChatPage(page);
  await page.goto("/");
  await expect(chat.status).toHaveAttribute("data-status", "http", { timeout: 20_000 });
  await expect(chat.status).toHaveText(/HTTP/);

  await chat.send("[[long]] hello over plain requests");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await chat.waitForReplyDone();
  expectWordsOnceInOrder((await chat.lastAssistant().locator(".content").textContent()) ?? "", 60);
  const sidebar = page.getByRole("navigation", { name: "Conversations" });
  await expect(sidebar.getByRole("link", { name: /hello over plain requests/ })).toBeVisible();

  // Regenerate goes over HTTP as well, and a reload finds everything stored.
  const firstId = await chat.lastAssistant().getAttribute("data-message-id");
  await page.getByRole("button", { name: "↻ Regenerate" }).click();
  await expect(chat.lastAssistant()).not.toHaveAttribute("data-message-id", firstId ?? "");
  await chat.waitForReplyDone();
  await page.reload();
  await expect(chat.status).toHaveAttribute("data-status", "http", { timeout: 20_000 });
  await expect(chat.assistantMessages()).toHaveCount(1);
  expectWordsOnceInOrder((await chat.lastAssistant().locator(".content").textContent()) ?? "", 60);
  await page.screenshot({ path: `${SHOTS}/http-fallback.png` });
  chat.expectNoErrors();
});

test("from the HTTP fallback the page returns to the WebSocket once it works again", async ({ page }) => {
  let socketsWork = false;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    if (socketsWork) ws.connectToServer();
    else ws.close();
  });
  await page.clock.install();
  const chat = new ChatPage(page);
  await page.goto("/");
  await expect(chat.status).toHaveAttribute("data-status", "http", { timeout: 20_000 });
  socketsWork = true;
  // The fallback probes for a working socket once a minute.
  await page.clock.fastForward(61_000);
  await expect(chat.status).toHaveAttribute("data-status", "connected", { timeout: 20_000 });
  await chat.send("back on the socket");
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: back on the socket");
  chat.expectNoErrors();
});
