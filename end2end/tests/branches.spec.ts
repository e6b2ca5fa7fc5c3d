import { expect, type Page, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * Swipes and branches as a person uses them: Regenerate keeps every reply
 * (‹ 2/3 › on the last one), Edit on an earlier message starts a branch and
 * the earlier one stays one ‹ away, and a second tab follows every choice
 * live. The same on a phone.
 */

const SHOTS = "test-results/screens";

/** The pager of `message`: its position text, and its two buttons. */
function pager(message: ReturnType<ChatPage["lastAssistant"]>) {
  return {
    position: message.locator(".alternative-position"),
    previous: message.getByRole("button", { name: "Previous alternative" }),
    next: message.getByRole("button", { name: "Next alternative" }),
  };
}

async function regenerate(page: Page, chat: ChatPage) {
  await page.getByRole("button", { name: "↻ Regenerate" }).click();
  await expect(chat.lastAssistant()).toHaveAttribute("aria-busy", "true");
  await chat.waitForReplyDone();
}

for (const phone of [false, true]) {
  test.describe(phone ? "swipes and branches on a phone (390×844)" : "swipes and branches", () => {
    if (phone) test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

    test("three replies to swipe between; the choice is stored and followed by a second tab", async ({
      page,
      context,
    }) => {
      const chat = new ChatPage(page);
      await chat.open();
      await chat.send("[[tokens:3]] swipe");
      await chat.waitForReplyDone();
      const first = await chat.lastAssistant().getAttribute("data-message-id");
      await expect(pager(chat.lastAssistant()).position).toHaveCount(0);
      await regenerate(page, chat);
      await regenerate(page, chat);
      const reply = pager(chat.lastAssistant());
      await expect(reply.position).toHaveText("3/3");
      await expect(reply.next).toBeDisabled();
      await expect(chat.assistantMessages()).toHaveCount(1);
      const third = await chat.lastAssistant().getAttribute("data-message-id");

      await reply.previous.click();
      await expect(reply.position).toHaveText("2/3");
      await reply.previous.click();
      await expect(reply.position).toHaveText("1/3");
      await expect(reply.previous).toBeDisabled();
      await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", first ?? "");
      await page.screenshot({ path: `${SHOTS}/swipes${phone ? "-phone" : ""}.png` });

      // A second tab shows the choice, and a choice made there reaches this one.
      const other = new ChatPage(await context.newPage());
      await other.page.goto(page.url());
      await expect(other.status).toHaveAttribute("data-status", "connected");
      await expect(pager(other.lastAssistant()).position).toHaveText("1/3");
      await pager(other.lastAssistant()).next.click();
      await pager(other.lastAssistant()).next.click();
      await expect(reply.position).toHaveText("3/3");
      await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", third ?? "");

      // The conversation goes on from the reply chosen.
      await chat.send("and then");
      await chat.waitForReplyDone();
      await expect(chat.userMessages()).toHaveCount(2);
      await expect(pager(chat.assistantMessages().first()).position).toHaveText("3/3");
      await page.reload();
      await expect(chat.status).toHaveAttribute("data-status", "connected");
      await expect(pager(chat.assistantMessages().first()).position).toHaveText("3/3");
      chat.expectNoErrors();
      other.expectNoErrors();
    });

    test("deleting a swipe shows the one before it", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      await chat.send("[[tokens:2]] two takes");
      await chat.waitForReplyDone();
      const first = await chat.lastAssistant().getAttribute("data-message-id");
      await regenerate(page, chat);
      await expect(pager(chat.lastAssistant()).position).toHaveText("2/2");
      page.once("dialog", (dialog) => dialog.accept());
      await chat.lastAssistant().getByRole("button", { name: "Delete message" }).click();
      await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", first ?? "");
      await expect(pager(chat.lastAssistant()).position).toHaveCount(0);
      // Declining the question deletes nothing.
      page.once("dialog", (dialog) => dialog.dismiss());
      await chat.lastAssistant().getByRole("button", { name: "Delete message" }).click();
      await page.reload();
      await expect(chat.status).toHaveAttribute("data-status", "connected");
      await expect(chat.lastAssistant()).toHaveAttribute("data-message-id", first ?? "");
      chat.expectNoErrors();
    });

    test("editing an earlier message starts a branch; the earlier branch comes back whole", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      await chat.send("first");
      await chat.waitForReplyDone();
      await chat.send("second");
      await chat.waitForReplyDone();
      await expect(chat.messages).toHaveCount(4);

      const firstMessage = chat.userMessages().first();
      await firstMessage.getByRole("button", { name: "Edit message" }).click();
      const box = page.getByRole("textbox", { name: "Edit message" });
      await expect(box).toHaveValue("first");
      await box.fill("first, edited");
      await page.getByRole("button", { name: "Save" }).click();
      await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: first, edited");
      await chat.waitForReplyDone();
      await expect(chat.messages).toHaveCount(2);
      const edited = pager(chat.userMessages().first());
      await expect(edited.position).toHaveText("2/2");
      await page.screenshot({ path: `${SHOTS}/branch${phone ? "-phone" : ""}.png` });

      await edited.previous.click();
      await expect(chat.messages).toHaveCount(4);
      await expect(edited.position).toHaveText("1/2");
      await expect(chat.userMessages().nth(1).locator(".content")).toHaveText("second");
      await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: second");
      await edited.next.click();
      await expect(chat.messages).toHaveCount(2);
      await expect(chat.userMessages().first().locator(".content")).toHaveText("first, edited");

      // A reply's text can be edited too: stored as it is, rendered as markdown.
      await chat.lastAssistant().getByRole("button", { name: "Edit message" }).click();
      await page.getByRole("textbox", { name: "Edit message" }).fill("Better: **bold** <img src=x onerror=alert(1)>");
      await page.getByRole("button", { name: "Save" }).click();
      await expect(chat.lastAssistant().locator(".content strong")).toHaveText("bold");
      await expect(chat.lastAssistant().locator("img")).toHaveCount(0);
      await expect(pager(chat.lastAssistant()).position).toHaveText("2/2");

      // Cancel leaves a message as it was.
      await chat.userMessages().first().getByRole("button", { name: "Edit message" }).click();
      await page.getByRole("textbox", { name: "Edit message" }).fill("never mind");
      await page.getByRole("button", { name: "Cancel" }).click();
      await expect(chat.userMessages().first().locator(".content")).toHaveText("first, edited");
      chat.expectNoErrors();
    });
  });
}
