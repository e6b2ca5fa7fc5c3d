import { expect, test, type Browser, type Page } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";
import { OwnServer } from "./support/server";

/**
 * Accounts (AUTH_MODE=accounts): signing up and in through the server's
 * forms, the same account on two browsers (two devices), an admin
 * approving a sign-up, signing a device out from the settings page, and
 * signing in with the keyboard alone. Each test has a server of its own.
 */

const PASSWORD = "correct horse battery";

async function device(browser: Browser, server: OwnServer): Promise<Page> {
  const context = await browser.newContext({ baseURL: server.url });
  return context.newPage();
}

async function signUp(page: Page, username: string) {
  await page.goto("/signup");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Password again").fill(PASSWORD);
  await page.getByRole("button", { name: "Make my account" }).click();
}

async function signIn(page: Page, username: string) {
  await page.goto("/");
  await expect(page).toHaveURL(/\/signin\?next=/);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

async function connected(page: Page): Promise<ChatPage> {
  const chat = new ChatPage(page);
  await expect(chat.status).toHaveAttribute("data-status", "connected");
  return chat;
}

test("sign up, sign in on a second device, and watch a reply from the first stream there", async ({ browser }) => {
  const server = new OwnServer(3121, { AUTH_MODE: "accounts" });
  await server.start();
  try {
    const laptop = await device(browser, server);
    await laptop.goto("/");
    await expect(laptop).toHaveURL(/\/signin\?next=%?\/?/);
    await laptop.getByRole("link", { name: "Make an account" }).click();
    await expect(laptop.getByText("first account: it will be the admin")).toBeVisible();
    await signUp(laptop, "Ann");
    const chat = await connected(laptop);
    await expect(laptop.locator(".account-link")).toHaveText("ann");
    await expect(laptop.getByRole("link", { name: "Admin" })).toBeVisible();

    const phone = await device(browser, server);
    await signIn(phone, "ann");
    const phoneChat = await connected(phone);

    await chat.send("[[delay:120]] [[tokens:40]] from the laptop");
    // The phone hears of the new conversation and follows its reply live.
    await phone.locator(".conversation-list").getByRole("link", { name: /from the laptop/ }).click();
    await expect(phone.locator("article.message.streaming")).toBeVisible();
    await expect(phoneChat.lastAssistant().locator(".content")).toContainText("t40");
    await phoneChat.waitForReplyDone();
    await chat.waitForReplyDone();
    await expect(chat.lastAssistant().locator(".content")).toContainText("t40");
    chat.expectNoErrors();
    phoneChat.expectNoErrors();
  } finally {
    await server.stop();
  }
});

test("an admin approves a pending sign-up", async ({ browser }) => {
  const server = new OwnServer(3122, { AUTH_MODE: "accounts", REGISTRATION: "approval" });
  await server.start();
  try {
    const admin = await device(browser, server);
    await signUp(admin, "admin");
    await connected(admin);

    const bob = await device(browser, server);
    await signUp(bob, "bob");
    await expect(bob).toHaveURL(/\/signin/);
    await expect(bob.getByRole("status")).toContainText("waits for an admin's approval");
    await bob.getByLabel("Username").fill("bob");
    await bob.getByLabel("Password").fill(PASSWORD);
    await bob.getByRole("button", { name: "Sign in", exact: true }).click();
    await expect(bob.getByRole("alert")).toContainText("waiting for an admin's approval");

    await admin.getByRole("link", { name: "Admin", exact: true }).click();
    await expect(admin).toHaveURL(/\/admin$/);
    const row = admin.locator('tr[data-user="bob"]');
    await expect(row.locator(".user-status")).toHaveText("pending");
    await row.getByRole("button", { name: "Approve" }).click();
    await expect(admin.getByRole("status")).toHaveText("Done.");
    await expect(row.locator(".user-status")).toHaveText("active");

    await signIn(bob, "bob");
    await connected(bob);
  } finally {
    await server.stop();
  }
});

test("signing a device out from the settings page sends it to the sign-in page", async ({ browser }) => {
  const server = new OwnServer(3123, { AUTH_MODE: "accounts" });
  await server.start();
  try {
    const laptop = await device(browser, server);
    await signUp(laptop, "ann");
    await connected(laptop);
    const phone = await device(browser, server);
    await signIn(phone, "ann");
    await connected(phone);

    await laptop.locator(".account-link").click();
    await expect(laptop).toHaveURL(/\/settings$/);
    const rows = laptop.locator(".session-row");
    await expect(rows).toHaveCount(2);
    const other = rows.filter({ hasNot: laptop.locator(".session-current") });
    await expect(other.locator(".session-device")).toContainText("Chrome");
    await other.getByRole("button", { name: "Sign out" }).click();
    await expect(laptop.getByRole("status")).toHaveText("That device is signed out.");
    await expect(rows).toHaveCount(1);
    // The phone's socket is closed at once; its page reloads to sign in.
    await expect(phone).toHaveURL(/\/signin/);
  } finally {
    await server.stop();
  }
});

test("signing in with the keyboard alone", async ({ browser }) => {
  const server = new OwnServer(3124, { AUTH_MODE: "accounts" });
  await server.start();
  try {
    const first = await device(browser, server);
    await signUp(first, "ann");
    await connected(first);

    const page = await device(browser, server);
    await page.goto("/");
    await expect(page.getByLabel("Username")).toBeFocused();
    await page.keyboard.type("ann");
    await page.keyboard.press("Tab");
    await expect(page.getByLabel("Password")).toBeFocused();
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    const chat = await connected(page);
    await expect(chat.input).toBeVisible();
    await page.keyboard.press("Tab");
    await expect(page.locator(":focus")).toBeVisible();
  } finally {
    await server.stop();
  }
});

test("a guest who makes an account keeps their conversation", async ({ page, baseURL }) => {
  // The suite's own server is in open mode: a guest chats first.
  const chat = new ChatPage(page);
  await chat.open();
  await expect(page.locator(".account-link")).toHaveText("Sign in");
  await chat.send("kept after signing up");
  await chat.waitForReplyDone();
  const name = `guest${Date.now()}`;
  await page.locator(".account-link").click();
  await expect(page).toHaveURL(/\/signin$/);
  await page.getByRole("link", { name: "Make an account" }).click();
  await expect(page.getByText("The chats you had here without an account move to it.")).toBeVisible();
  await signUp(page, name);
  await expect(page).toHaveURL(`${baseURL}/`);
  await connected(page);
  await expect(page.locator(".account-link")).toHaveText(name);
  await expect(page.locator(".conversation-list").getByRole("link", { name: "kept after signing up" })).toBeVisible();
});

test("a passkey added in settings signs in without a password (virtual authenticator)", async ({ browser }) => {
  const server = new OwnServer(3125, { AUTH_MODE: "accounts" });
  await server.start();
  try {
    // WebAuthn needs a domain for its relying party id: localhost, not 127.0.0.1.
    const context = await browser.newContext({ baseURL: "http://localhost:3125" });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await signUp(page, "ann");
    await connected(page);
    await page.goto("/settings");
    await page.locator("#passkey-name").fill("Laptop key");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await expect(page.getByRole("status")).toHaveText("Passkey added.");
    await expect(page.locator(".passkey-row")).toContainText("Laptop key");

    await page.getByRole("button", { name: "Sign out of this device" }).click();
    await expect(page).toHaveURL(/\/signin/);
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    const chat = await connected(page);
    await expect(page.locator(".account-link")).toHaveText("ann");
    await chat.send("hello from a passkey");
    await chat.waitForReplyDone();
    await page.goto("/settings");
    await expect(page.locator(".passkey-row")).not.toContainText("never");
  } finally {
    await server.stop();
  }
});

test("over the day's quota the page says so and keeps the message", async ({ browser }) => {
  const server = new OwnServer(3126, { AUTH_MODE: "accounts", QUOTA_MESSAGES_PER_DAY: "1" });
  await server.start();
  try {
    const page = await device(browser, server);
    await signUp(page, "ann");
    const chat = await connected(page);
    await chat.send("the one message of today");
    await chat.waitForReplyDone();
    await chat.send("one too many");
    await expect(page.getByRole("alert")).toContainText("today's quota of 1 messages is used up");
    await expect(chat.input).toHaveValue("one too many");
    await expect(chat.userMessages()).toHaveCount(1);
    chat.expectNoErrors();
  } finally {
    await server.stop();
  }
});
