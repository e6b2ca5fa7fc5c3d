import * as fs from "node:fs";
import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * Take your data: a conversation with a swipe exported as Markdown and as
 * JSON from the top bar, the JSON imported back from the sidebar (a new
 * conversation showing the same, ‹ 2/2 › included), and everything in one
 * download. The same on a phone.
 */

for (const phone of [false, true]) {
  test.describe(phone ? "your data on a phone (390×844)" : "your data", () => {
    if (phone) test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

    test("export a conversation as Markdown and JSON, import it back, download everything", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      await chat.send("[[tokens:3]] keep this");
      await chat.waitForReplyDone();
      await page.getByRole("button", { name: "↻ Regenerate" }).click();
      await expect(chat.lastAssistant().locator(".alternative-position")).toHaveText("2/2");
      await chat.waitForReplyDone();
      const original = page.url();

      await page.getByText("Export", { exact: true }).click();
      const [markdown] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("link", { name: "Markdown" }).click(),
      ]);
      expect(markdown.suggestedFilename()).toBe("tokens3_keep_this.md");
      const text = fs.readFileSync(await markdown.path(), "utf8");
      expect(text).toContain("# [[tokens:3]] keep this");
      expect(text).toContain("version 2 of 2");

      await page.getByText("Export", { exact: true }).click();
      const [json] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("link", { name: "JSON (all branches)" }).click(),
      ]);
      const exported = JSON.parse(fs.readFileSync(await json.path(), "utf8"));
      expect(exported.format).toBe("tether.conversation");
      expect(exported.messages).toHaveLength(3);

      if (phone) await page.getByRole("button", { name: "Show conversations" }).click();
      await page.locator(".your-data input[type=file]").setInputFiles(await json.path());
      await expect(page).not.toHaveURL(original);
      await expect(page).toHaveURL(/\/c\/[0-9a-f]+$/);
      await expect(chat.userMessages()).toHaveCount(1);
      await expect(chat.lastAssistant().locator(".alternative-position")).toHaveText("2/2");
      await expect(chat.lastAssistant().locator(".content")).toHaveText("t1 t2 t3");
      if (phone) await page.getByRole("button", { name: "Show conversations" }).click();
      await expect(page.locator(".conversation-list li")).toHaveCount(2);

      // A file that is not an export is refused with the reason.
      const bad = test.info().outputPath("not-an-export.json");
      fs.writeFileSync(bad, '{"hello": "world"}');
      await page.locator(".your-data input[type=file]").setInputFiles(bad);
      await expect(page.locator(".import-error")).toContainText("not a conversation export");

      const [everything] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("link", { name: "Download all my data" }).click(),
      ]);
      const all = JSON.parse(fs.readFileSync(await everything.path(), "utf8"));
      expect(all.format).toBe("tether.export");
      expect(all.conversations).toHaveLength(2);
      chat.expectNoErrors();
    });
  });
}
