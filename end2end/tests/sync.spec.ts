import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * What changes outside a conversation shows in the user's other tabs at
 * once: a companion made (here over the API, as another device would),
 * a conversation made and renamed.
 */
test("companions and conversations made or renamed in one tab show in another", async ({ page, context, baseURL }) => {
  const chat = new ChatPage(page);
  await chat.open();
  const other = new ChatPage(await context.newPage());
  await other.open();

  const made = await page.request.post("/api/companions", {
    data: { name: "Nova", emoji: "✨" },
    headers: { origin: baseURL ?? "" },
  });
  expect(made.status()).toBe(201);
  await expect(other.page.locator('.companion-card[data-companion="Nova"]')).toBeVisible();

  await chat.send("from the first tab");
  await chat.waitForReplyDone();
  const sidebar = other.page.locator(".conversation-list");
  await expect(sidebar.getByRole("link", { name: "from the first tab" })).toBeVisible();

  const mine = page.locator(".sidebar");
  await mine.locator("li.conversation", { hasText: "from the first tab" }).getByRole("button", { name: "Rename" }).click();
  const titleBox = mine.getByRole("textbox", { name: "New title" });
  await titleBox.fill("Renamed here");
  await titleBox.press("Enter");
  await expect(sidebar.getByRole("link", { name: "Renamed here", exact: true })).toBeVisible();
  chat.expectNoErrors();
  other.expectNoErrors();
});
