// The first streamed reply in Chromium: open the page, send a message, wait
// for the reply. Prints the seconds since T0 (epoch seconds, env) at each stage.
const { chromium } = await import(`${process.env.NODE_MODULES}/playwright-core/index.mjs`);
const t0 = Number(process.env.T0);
const since = () => (Date.now() / 1000 - t0).toFixed(0);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const page = await browser.newPage();
await page.goto(process.env.URL);
await page.locator('.status[data-status="connected"]').waitFor({ timeout: 60_000 });
console.log(`page connected at +${since()} s`);
const notice = await page.locator(".model-setup").textContent({ timeout: 2_000 }).catch(() => null);
console.log(`model notice: ${notice}`);
await page.getByRole("textbox", { name: "Message" }).fill("Hi! I had a long day at work. Can you cheer me up?");
await page.keyboard.press("Enter");
console.log(`sent at +${since()} s`);
const reply = page.locator('article.message[data-role="assistant"] .content').last();
await reply.filter({ hasText: /\S/ }).waitFor({ timeout: 3_600_000 });
console.log(`first text at +${since()} s`);
await page.locator("article.message.streaming").waitFor({ state: "detached", timeout: 600_000 });
console.log(`reply done at +${since()} s: ${await reply.textContent()}`);
await browser.close();
