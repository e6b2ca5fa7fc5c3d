import { expect, type Locator, type Page } from "@playwright/test";

/** The chat page, as a person uses it. */
export class ChatPage {
  readonly input: Locator;
  readonly status: Locator;
  readonly messages: Locator;
  /** Uncaught errors and Rust panics (console_error_panic_hook) seen on the page. */
  readonly errors: string[] = [];

  constructor(readonly page: Page) {
    page.on("pageerror", (e) => this.errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error" && /panicked|hydrat/i.test(m.text())) this.errors.push(m.text());
    });
    this.input = page.getByRole("textbox", { name: "Message" });
    this.status = page.locator(".status");
    this.messages = page.locator(".messages article.message");
  }

  /** Opens the app and waits until it is hydrated and connected. */
  async open() {
    await this.page.goto("/");
    await expect(this.status).toHaveAttribute("data-status", "connected");
  }

  /** Types a message and presses Enter. */
  async send(text: string) {
    await this.input.fill(text);
    await this.input.press("Enter");
  }

  assistantMessages(): Locator {
    return this.page.locator('article.message[data-role="assistant"]');
  }

  userMessages(): Locator {
    return this.page.locator('article.message[data-role="user"]');
  }

  lastAssistant(): Locator {
    return this.assistantMessages().last();
  }

  /**
   * Records every text the last assistant bubble shows, as the DOM changes,
   * until the reply finishes. Returns the distinct texts in order.
   */
  async recordStreamedTexts(): Promise<string[]> {
    await this.page.evaluate(() => {
      const w = window as unknown as { __texts: string[]; __observer?: MutationObserver };
      w.__texts = [];
      const record = () => {
        const all = document.querySelectorAll('article.message[data-role="assistant"] .content');
        const last = all[all.length - 1];
        const text = (last?.textContent ?? "").trim();
        if (text && w.__texts[w.__texts.length - 1] !== text) w.__texts.push(text);
      };
      w.__observer = new MutationObserver(record);
      w.__observer.observe(document.body, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    return [];
  }

  async recordedTexts(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { __texts: string[] }).__texts);
  }

  /** Fails on any page error or panic seen so far (hydration mismatches panic). */
  expectNoErrors() {
    expect(this.errors).toEqual([]);
  }

  /** Waits until no reply is streaming. */
  async waitForReplyDone() {
    await expect(this.page.locator("article.message.streaming")).toHaveCount(0);
    await expect(this.lastAssistant()).toHaveAttribute("aria-busy", "false");
  }
}

/**
 * Opens `path` and returns the time from navigation start until the page was
 * hydrated and its socket connected (the status turns "connected"), in ms.
 */
export async function timeToInteractive(page: Page, path = "/"): Promise<number> {
  await page.addInitScript(() => {
    const w = window as unknown as { __tti?: number };
    const check = () => {
      if (w.__tti === undefined && document.querySelector('.status[data-status="connected"]')) {
        w.__tti = performance.now();
      }
    };
    new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
  });
  await page.goto(path);
  await expect(page.locator('.status[data-status="connected"]')).toBeVisible();
  return page.evaluate(() => (window as unknown as { __tti: number }).__tti);
}
