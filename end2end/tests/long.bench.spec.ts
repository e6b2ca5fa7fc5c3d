import { writeFileSync } from "node:fs";
import { expect, test, type Page } from "@playwright/test";
import { cookieValue, LONG_ID, messageId, seed, SESSION_SECRET, TOPICS } from "./support/seed";
import { OwnServer } from "./support/server";

/**
 * The long-conversation bench row (issue 18), not a test: skipped unless
 * TETHER_LONG=<messages> is set (`bench/long.sh N` sets it). It seeds one
 * user with TETHER_LONG_CONVERSATIONS (default 2,000) short conversations
 * and one of N messages, then measures, on a server of its own
 * (TETHER_LONG_BIN, default the `cargo leptos build` binary; its site
 * LEPTOS_SITE_ROOT):
 *
 * - the server-rendered `/c/:id`: time (each of TETHER_LONG_RUNS requests,
 *   after one warm-up) and bytes;
 * - the `snapshot` of that conversation (GET …/events): bytes and messages;
 * - in Chromium: time from navigation to "connected" and to the last message
 *   in view, and the `<article>`s in the DOM then;
 * - the sidebar: time from navigation to its first conversation painted, and
 *   a search typed into it until the list shows only matches.
 *
 * It prints one `LONG_RESULT {json}` line and writes the JSON to
 * TETHER_LONG_OUT when set. Its only assertions are that each thing measured
 * happened (the page connected, the last message showed): timings are
 * numbers to record, never pass/fail.
 */

const MESSAGES = Number(process.env.TETHER_LONG ?? 0);
const CONVERSATIONS = Number(process.env.TETHER_LONG_CONVERSATIONS ?? 2000);
const RUNS = Number(process.env.TETHER_LONG_RUNS ?? 5);
const PORT = Number(process.env.TETHER_LONG_PORT ?? 3150);

test.skip(!MESSAGES, "bench row: set TETHER_LONG=<messages> (bench/long.sh)");
test.setTimeout(300_000);

/**
 * Milliseconds from the page's navigation start until `selector` matches an
 * element in view of its scroll container and the window (checked every
 * animation frame, in the page: no polling interval of the test runner).
 */
async function timeUntilInView(page: Page, selector: string, timeout = 120_000): Promise<number> {
  const handle = await page.waitForFunction(
    (sel) => {
      const el = document.querySelector(sel);
      if (!el) return false;
      const box = el.getBoundingClientRect();
      const list = el.closest(".messages, .sidebar") ?? document.documentElement;
      const frame = list.getBoundingClientRect();
      const visible =
        box.height > 0 && box.bottom > frame.top && box.top < frame.bottom && box.top < window.innerHeight;
      return visible ? performance.now() : false;
    },
    selector,
    { polling: "raf", timeout },
  );
  return (await handle.jsonValue()) as number;
}

/** The page's first contentful paint (ms from navigation start). */
async function firstContentfulPaint(page: Page): Promise<number> {
  const handle = await page.waitForFunction(
    () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? false,
    undefined,
    { polling: "raf", timeout: 120_000 },
  );
  return (await handle.jsonValue()) as number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const round = (ms: number) => Math.round(ms * 10) / 10;

test("long conversation bench row", async ({ browser }) => {
  const server = new OwnServer(
    PORT,
    { SESSION_SECRET, RUST_LOG: "warn" },
    process.env.TETHER_LONG_BIN,
  );
  await server.start();
  try {
    seed(server.dataDir, MESSAGES, CONVERSATIONS);
    const cookie = `tether_id=${cookieValue()}`;
    const pageUrl = `${server.url}/c/${LONG_ID}`;

    // The server-rendered page.
    const ssrMs: number[] = [];
    let ssrBytes = 0;
    for (let run = 0; run <= RUNS; run++) {
      const started = performance.now();
      const response = await fetch(pageUrl, { headers: { cookie } });
      const body = await response.arrayBuffer();
      const elapsed = performance.now() - started;
      expect(response.status).toBe(200);
      ssrBytes = body.byteLength;
      if (run > 0) ssrMs.push(elapsed);
    }

    // The snapshot, as the events endpoint sends it (the socket's frame, byte for byte).
    const events = await (
      await fetch(`${server.url}/api/conversations/${LONG_ID}/events`, { headers: { cookie } })
    ).text();
    const data = events.split("\n").find((line) => line.startsWith("data: "));
    expect(data, "a snapshot event").toBeTruthy();
    const snapshotJson = data!.slice("data: ".length);
    const snapshot = JSON.parse(snapshotJson);
    expect(snapshot.type).toBe("snapshot");

    // The page in Chromium.
    const context = await browser.newContext();
    await context.addCookies([{ name: "tether_id", value: cookieValue(), url: server.url }]);
    const page = await context.newPage();
    await page.goto(pageUrl, { waitUntil: "commit" });
    // Watched at once, each checked every frame.
    const [lastVisibleMs, connectedMs, pageFcpMs] = await Promise.all([
      timeUntilInView(page, `article[data-message-id="${messageId(MESSAGES)}"]`),
      timeUntilInView(page, '.status[data-status="connected"]'),
      firstContentfulPaint(page),
    ]);
    // The view after the snapshot (the server-rendered history until then).
    await expect(page.locator(".messages article").last()).toHaveAttribute(
      "data-message-id",
      messageId(MESSAGES),
    );
    const articles = await page.locator("article").count();
    // What this first load (a new context: nothing cached) carried over
    // the wire, by kind: bodies as sent (`encodedBodySize`: compressed
    // where the server compressed them).
    const firstLoad = await page.evaluate(() => {
      const bytes: Record<string, number> = { html: 0, wasm: 0, js: 0, css: 0, other: 0 };
      for (const entry of performance.getEntriesByType("navigation") as PerformanceResourceTiming[]) {
        bytes.html += entry.encodedBodySize;
      }
      for (const entry of performance.getEntriesByType("resource") as PerformanceResourceTiming[]) {
        const path = new URL(entry.name).pathname;
        const kind = path.endsWith(".wasm") ? "wasm" : path.endsWith(".js") ? "js" : path.endsWith(".css") ? "css" : "other";
        bytes[kind] += entry.encodedBodySize;
      }
      return { ...bytes, total: Object.values(bytes).reduce((a, b) => a + b, 0) };
    });
    // The server compresses its pages for a browser (brotli or gzip).
    expect(firstLoad.html, "the page went out compressed").toBeGreaterThan(0);
    expect(firstLoad.html, "the page went out compressed").toBeLessThan(ssrBytes / 2);

    // The sidebar: first conversation painted, then a search.
    const sidebar = await context.newPage();
    await sidebar.goto(`${server.url}/`, { waitUntil: "commit" });
    const [sidebarFirstMs, sidebarFcpMs] = await Promise.all([
      timeUntilInView(sidebar, ".conversation"),
      firstContentfulPaint(sidebar),
    ]);
    await expect(sidebar.locator(".status")).toHaveAttribute("data-status", "connected", { timeout: 120_000 });
    const listed = await sidebar.locator(".conversation").count();
    const searchMs: number[] = [];
    for (const topic of [TOPICS[2], TOPICS[4], TOPICS[0]]) {
      searchMs.push(
        await sidebar.evaluate(async (word) => {
          const input = document.querySelector<HTMLInputElement>("#search")!;
          const started = performance.now();
          input.value = word;
          input.dispatchEvent(new Event("input", { bubbles: true }));
          // Settled: every title shown has the word (and some are shown).
          for (;;) {
            await new Promise((r) => requestAnimationFrame(r));
            const titles = [...document.querySelectorAll(".conversation-link")].map((a) => a.textContent ?? "");
            if (titles.length > 0 && titles.every((t) => t.includes(word))) return performance.now() - started;
            if (performance.now() - started > 60_000) throw new Error(`search for ${word} never settled`);
          }
        }, topic),
      );
    }
    await context.close();

    const result = {
      messages: MESSAGES,
      conversations: CONVERSATIONS + 1,
      ssr_ms_median: round(median(ssrMs)),
      ssr_ms_min: round(Math.min(...ssrMs)),
      ssr_ms_max: round(Math.max(...ssrMs)),
      ssr_bytes: ssrBytes,
      first_load_bytes: firstLoad,
      snapshot_bytes: Buffer.byteLength(snapshotJson),
      snapshot_messages: snapshot.messages.length,
      snapshot_has_more: snapshot.has_more ?? false,
      first_contentful_paint_ms: round(pageFcpMs),
      connected_ms: round(connectedMs),
      last_message_visible_ms: round(lastVisibleMs),
      dom_articles: articles,
      sidebar_first_conversation_ms: round(sidebarFirstMs),
      sidebar_first_contentful_paint_ms: round(sidebarFcpMs),
      sidebar_listed: listed,
      search_ms: searchMs.map(round),
    };
    console.log(`LONG_RESULT ${JSON.stringify(result)}`);
    if (process.env.TETHER_LONG_OUT) writeFileSync(process.env.TETHER_LONG_OUT, JSON.stringify(result, null, 2));
  } finally {
    await server.stop();
  }
});
