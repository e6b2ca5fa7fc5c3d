import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * Model choice: the provider lists two models (the fake's FAKE_MODELS), the
 * top bar's picker chooses one for a new chat and changes it for the open
 * one; every reply says which model wrote it. The same on a phone.
 */

for (const phone of [false, true]) {
  test.describe(phone ? "model choice on a phone (390×844)" : "model choice", () => {
    if (phone) test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

    test("a new chat on a picked model, then the next replies on another", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      const picker = page.getByRole("combobox", { name: "Model" });
      await expect(picker).toHaveValue("fake");
      await expect(picker.locator("option")).toHaveText(["fake", "fake-large"]);
      await picker.selectOption("fake-large");
      await chat.send("[[model]] who answers?");
      await chat.waitForReplyDone();
      await expect(chat.lastAssistant().locator(".content")).toHaveText("model fake-large");
      await expect(chat.lastAssistant().locator(".reply-model")).toHaveText("fake-large");
      await expect(picker).toHaveValue("fake-large");

      await picker.selectOption("fake");
      await chat.send("[[model]] and now?");
      await chat.waitForReplyDone();
      await expect(chat.lastAssistant().locator(".content")).toHaveText("model fake");
      await expect(chat.lastAssistant().locator(".reply-model")).toHaveText("fake");

      await page.reload();
      await expect(chat.status).toHaveAttribute("data-status", "connected");
      await expect(picker).toHaveValue("fake");
      await expect(chat.assistantMessages().first().locator(".reply-model")).toHaveText("fake-large");
      chat.expectNoErrors();
    });
  });
}
