import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

test("a reply streams into the page word by word", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.recordStreamedTexts();

  await chat.send("tell me something nice about the sea");
  await expect(chat.userMessages().last()).toContainText("tell me something nice about the sea");

  const expected = "You said: tell me something nice about the sea";
  await expect(chat.lastAssistant().locator(".content")).toHaveText(expected);
  await chat.waitForReplyDone();

  const texts = await chat.recordedTexts();
  const intermediate = texts.filter((t) => t !== expected && expected.startsWith(t));
  // At least two partial states were on screen before the whole reply.
  expect(intermediate.length).toBeGreaterThanOrEqual(2);
  // Each state extends the previous one: nothing lost, nothing doubled.
  for (let i = 1; i < texts.length; i++) {
    expect(texts[i].startsWith(texts[i - 1])).toBeTruthy();
  }
  await expect(chat.input).toHaveValue("");
  await page.screenshot({ path: "test-results/streamed-reply.png", fullPage: true });
});

test("Shift+Enter inserts a newline instead of sending", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.input.fill("first line");
  await chat.input.press("Shift+Enter");
  await chat.input.pressSequentially("second line");
  await expect(chat.input).toHaveValue("first line\nsecond line");
  await expect(chat.userMessages()).toHaveCount(0);
  await chat.input.press("Enter");
  await expect(chat.userMessages().last()).toContainText("second line");
  await chat.waitForReplyDone();
});

test("model output with HTML stays inert text", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[xss]] show me");
  await expect(chat.lastAssistant().locator(".content")).toContainText("<script>");
  await chat.waitForReplyDone();
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  await expect(chat.lastAssistant().locator("img")).toHaveCount(0);
});

test("Stop keeps the partial reply", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[long]] go on and on");
  await expect(chat.lastAssistant().locator(".content")).toContainText("word3");
  await page.getByRole("button", { name: "Stop the reply" }).click();
  await chat.waitForReplyDone();
  await expect(chat.lastAssistant().locator(".finish")).toHaveText("stopped");
  const text = (await chat.lastAssistant().locator(".content").textContent()) ?? "";
  expect(text).toContain("word3");
  expect(text).not.toContain("word60");
});

test("replies render as markdown: lists, tables, code", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("[[markdown]] format something");
  await chat.waitForReplyDone();
  const reply = chat.lastAssistant().locator(".content");
  await expect(reply.locator("strong")).toHaveText("bold");
  await expect(reply.locator("li")).toHaveCount(2);
  await expect(reply.locator("table td").first()).toHaveText("1");
  await expect(reply.locator("pre code")).toContainText('println!("hi");');
  await page.screenshot({ path: "test-results/markdown-reply.png", fullPage: true });
});

test("conversations get a URL, survive reload, and can be searched, renamed and deleted", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await chat.send("remember the lighthouse");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
  await chat.waitForReplyDone();
  const url = page.url();

  await page.reload();
  await expect(chat.status).toHaveAttribute("data-status", "connected");
  await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: remember the lighthouse");
  expect(page.url()).toBe(url);

  const sidebar = page.getByRole("navigation", { name: "Conversations" });
  await expect(sidebar.getByRole("link", { name: "remember the lighthouse" })).toBeVisible();
  await sidebar.getByRole("searchbox", { name: "Search conversations" }).fill("lighthouse");
  await expect(sidebar.locator("li.conversation")).toHaveCount(1);
  await sidebar.getByRole("searchbox", { name: "Search conversations" }).fill("no such words");
  await expect(sidebar.locator("li.conversation")).toHaveCount(0);
  await sidebar.getByRole("searchbox", { name: "Search conversations" }).fill("");

  const item = sidebar.locator("li.conversation", { hasText: "remember the lighthouse" });
  await item.getByRole("button", { name: "Rename" }).click();
  const titleBox = sidebar.getByRole("textbox", { name: "New title" });
  await titleBox.fill("Lighthouse");
  await titleBox.press("Enter");
  await expect(sidebar.getByRole("link", { name: "Lighthouse", exact: true })).toBeVisible();

  page.once("dialog", (dialog) => dialog.accept());
  await sidebar.locator("li.conversation", { hasText: "Lighthouse" }).getByRole("button", { name: "Delete" }).click();
  await expect(sidebar.getByRole("link", { name: "Lighthouse", exact: true })).toHaveCount(0);
  await expect(page).toHaveURL(/\/$/);
});

test("the site's files: under their version and kept by the browser when embedded", async ({ page }) => {
  const files: { path: string; cache: string }[] = [];
  page.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    if (/\.(wasm|js|css)$/.test(path)) {
      files.push({ path, cache: response.headers()["cache-control"] ?? "" });
    }
  });
  const chat = new ChatPage(page);
  await chat.open();
  for (const kind of ["wasm", "js", "css"]) {
    expect(files.some((f) => f.path.endsWith(`.${kind}`)), `${kind} in ${JSON.stringify(files)}`).toBeTruthy();
  }
  // The one-file binary (scripts/package.sh; scripts/test.sh runs this file
  // against it with TETHER_E2E_EMBEDDED=1) links them under the build's
  // version, for a year; a site on disk by their names.
  const embedded = process.env.TETHER_E2E_EMBEDDED === "1";
  for (const file of files) {
    if (embedded) {
      expect(file.path).toMatch(/^\/pkg\/[0-9a-f]{16}\//);
      expect(file.cache).toBe("public, max-age=31536000, immutable");
    } else {
      expect(file.path).toMatch(/^\/pkg\/tether/);
    }
  }
  // A returning visit: with the embedded site they come from the browser's
  // cache without a request (a revalidation would transfer its headers).
  await chat.open();
  const transferred = await page.evaluate(() =>
    (performance.getEntriesByType("resource") as PerformanceResourceTiming[])
      .filter((entry) => /\.(wasm|js|css)$/.test(new URL(entry.name).pathname))
      .map((entry) => ({ path: new URL(entry.name).pathname, bytes: entry.transferSize })),
  );
  expect(transferred.length, JSON.stringify(transferred)).toBeGreaterThanOrEqual(3);
  if (embedded) {
    for (const entry of transferred) expect(entry.bytes, entry.path).toBe(0);
  }
});
