import { expect, test } from "@playwright/test";
import { cookieValue, LONG_ID, messageId, seed, SESSION_SECRET } from "./support/seed";
import { OwnServer } from "./support/server";

/**
 * A long conversation opens at its end with only its newest messages (the
 * snapshot's window), and scrolling up brings the earlier ones, page by
 * page, without moving what is on screen, back to the first message.
 */

const MESSAGES = 300;
const WINDOW = 50;

test("a long conversation opens at its end and scrolls back to its start without jumps", async ({
  browser,
}) => {
  const server = new OwnServer(3113, { SESSION_SECRET, HISTORY_WINDOW: String(WINDOW) });
  await server.start();
  try {
    seed(server.dataDir, MESSAGES, 3);
    const context = await browser.newContext();
    await context.addCookies([{ name: "tether_id", value: cookieValue(), url: server.url }]);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));

    await page.goto(`${server.url}/c/${LONG_ID}`);
    await expect(page.locator(".status")).toHaveAttribute("data-status", "connected");
    await expect(page.locator(`article[data-message-id="${messageId(MESSAGES)}"]`)).toBeInViewport();
    const messages = page.locator(".messages article.message");
    await expect(messages).toHaveCount(WINDOW);
    const loading = page.locator(".loading-earlier");
    await expect(loading).toHaveText("Loading earlier messages…");

    // Scroll to the top, page after page: the message that was first stays
    // exactly where it was on screen while the page before it is prepended.
    const list = page.locator(".messages");
    for (let shown = WINDOW; shown < MESSAGES; shown += WINDOW) {
      const first = messageId(MESSAGES - shown + 1);
      await expect(messages.first()).toHaveAttribute("data-message-id", first);
      const moved = await list.evaluate(async (el, id) => {
        const old = () => el.querySelector(`article[data-message-id="${id}"]`)!.getBoundingClientRect().top;
        el.scrollTo({ top: 0, behavior: "instant" });
        // Laid out now, in this task: the page cannot have arrived yet.
        const before = old();
        const started = performance.now();
        while (el.querySelector("article")!.getAttribute("data-message-id") === id) {
          await new Promise((r) => requestAnimationFrame(r));
          if (performance.now() - started > 10_000) throw new Error("no earlier page came");
        }
        await new Promise((r) => requestAnimationFrame(r));
        return { before, after: old(), scrollTop: el.scrollTop };
      }, first);
      expect(Math.abs(moved.after - moved.before), "the old first message stays where it was").toBeLessThan(1);
      expect(moved.scrollTop, "scrolled down by the page prepended").toBeGreaterThan(0);
      await expect(messages).toHaveCount(Math.min(shown + WINDOW, MESSAGES));
    }

    // The start: the first message, and nothing more to load.
    await list.evaluate((el) => el.scrollTo({ top: 0, behavior: "instant" }));
    await expect(page.locator(`article[data-message-id="${messageId(1)}"]`)).toBeInViewport();
    await expect(loading).toHaveCount(0);
    await expect(messages).toHaveCount(MESSAGES);
    const ids = await messages.evaluateAll((els) => els.map((el) => el.getAttribute("data-message-id")));
    expect(ids).toEqual(Array.from({ length: MESSAGES }, (_, i) => messageId(i + 1)));
    expect(errors).toEqual([]);
    await context.close();
  } finally {
    await server.stop();
  }
});
