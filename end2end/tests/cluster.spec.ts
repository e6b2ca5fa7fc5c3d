import { expect, test } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * Runs only against a cluster (the `cluster` project: TETHER_CLUSTER_URL,
 * started by scripts/test.sh with scripts/cluster.sh): HAProxy balances round
 * robin with no stickiness, so two tabs of one person (two browser contexts
 * sharing the first one's cookies) and their sockets land on either instance.
 * Whichever instance runs the reply, the other tab sees it stream live.
 */
test("two tabs of one person behind the load balancer see one reply stream live", async ({ browser }) => {
  const first = await browser.newContext();
  const pageA = await first.newPage();
  const a = new ChatPage(pageA);
  await a.open();
  await a.send("hello from the first tab");
  await expect(pageA).toHaveURL(/\/c\/[0-9a-f]+$/);
  await a.waitForReplyDone();
  await expect(a.lastAssistant().locator(".content")).toHaveText("You said: hello from the first tab");

  // The same person in a second tab: the first context's cookies.
  const second = await browser.newContext({ storageState: await first.storageState() });
  const pageB = await second.newPage();
  const b = new ChatPage(pageB);
  const served = await pageB.goto(pageA.url());
  const instance = served?.headers()["x-tether-instance"];
  if (instance) test.info().annotations.push({ type: "second tab's page from", description: instance });
  await expect(b.status).toHaveAttribute("data-status", "connected");
  await expect(b.lastAssistant().locator(".content")).toHaveText("You said: hello from the first tab");

  // A new message in the first tab; its reply streams into the second.
  await b.recordStreamedTexts();
  await a.send("[[long]] [[delay:40]] a long one");
  await expect(b.userMessages().last()).toContainText("a long one");
  const whole = Array.from({ length: 60 }, (_, i) => `word${i + 1}`).join(" ");
  await expect(b.lastAssistant().locator(".content")).toHaveText(whole);
  await b.waitForReplyDone();
  await a.waitForReplyDone();
  await expect(a.lastAssistant().locator(".content")).toHaveText(whole);

  // The recording starts with the earlier reply, then shows the new one.
  const earlier = "You said: hello from the first tab";
  const recorded = await b.recordedTexts();
  const texts = recorded.slice(recorded.findIndex((t) => t !== earlier));
  expect(texts[texts.length - 1]).toBe(whole);
  // Seen while streaming: partial states before the whole, each extending the
  // one before (nothing lost, doubled or reordered across instances).
  expect(texts.filter((t) => t !== whole && whole.startsWith(t)).length).toBeGreaterThanOrEqual(2);
  for (let i = 1; i < texts.length; i++) {
    expect(texts[i].startsWith(texts[i - 1])).toBeTruthy();
  }
  a.expectNoErrors();
  b.expectNoErrors();
  await first.close();
  await second.close();
});
