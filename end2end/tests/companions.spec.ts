import { expect, test, type Page } from "@playwright/test";
import { ChatPage } from "./pages/chat-page";

/**
 * Companions as a person uses them: make one with a picture, choose it and
 * swipe between its greetings, chat (its greeting first); import a PNG
 * character card made here by the V2 spec and chat with it; export it; and
 * the same on a phone.
 */

/** CRC-32 of PNG chunks. */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(kind: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(kind, "latin1"), Buffer.from(data)]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A 1×1 PNG with these text chunks (zlib stored block, no compression). */
function png(texts: [string, string][] = []): Buffer {
  const parts = [
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", new Uint8Array([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0])),
    chunk("IDAT", new Uint8Array([0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x80, 0x00, 0x82, 0x00, 0x81])),
  ];
  for (const [key, text] of texts) {
    parts.push(chunk("tEXt", Buffer.concat([Buffer.from(key, "latin1"), Buffer.from([0]), Buffer.from(text, "latin1")])));
  }
  parts.push(chunk("IEND", new Uint8Array()));
  return Buffer.concat(parts);
}

/** The text chunks of a PNG, by keyword. */
function textChunks(file: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 8;
  while (at + 12 <= file.length) {
    const len = file.readUInt32BE(at);
    const kind = file.toString("latin1", at + 4, at + 8);
    if (kind === "tEXt") {
      const data = file.subarray(at + 8, at + 8 + len);
      const split = data.indexOf(0);
      out.set(data.toString("latin1", 0, split), data.toString("latin1", split + 1));
    }
    at += 12 + len;
  }
  return out;
}

const card = {
  spec: "chara_card_v2",
  spec_version: "2.0",
  data: {
    name: "Captain Mira",
    description: "{{char}} sails the northern sea.",
    personality: "brave",
    scenario: "",
    first_mes: "Ahoy, {{user}}! I'm {{char}}.",
    mes_example: "",
    creator_notes: "",
    system_prompt: "",
    post_history_instructions: "",
    alternate_greetings: [],
    tags: ["sea"],
    creator: "e2e",
    character_version: "1",
    extensions: {},
  },
};

/** Makes a companion through the editor; returns when it is chosen. */
async function makeCompanion(page: Page, name: string) {
  await page.getByRole("button", { name: "+ New companion" }).click();
  const editor = page.getByRole("dialog", { name: "New companion" });
  await expect(editor).toBeVisible();
  await editor.getByLabel("Name").fill(name);
  await editor.getByLabel("Emoji").fill("🌊");
  await editor.getByLabel("Description").fill("Keeps the lighthouse.");
  await editor.getByLabel("Greeting (the first message of a new chat)").fill("Welcome, {{user}}. I am {{char}}.");
  await editor
    .getByLabel("Other greetings (separated by a line of ---)")
    .fill("Back again?\n---\nThe sea is loud tonight.");
  await editor.getByRole("button", { name: "Save" }).click();
  await expect(editor).toBeHidden();
  await expect(page.locator(".companion-card.selected")).toHaveAttribute("data-companion", name);
}

for (const phone of [false, true]) {
  test.describe(phone ? "companions on a phone (390×844)" : "companions", () => {
    if (phone) test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

    test("make a companion with a picture, swipe its greetings and chat with it", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      await makeCompanion(page, "Aria");

      // Its greetings, filled in, one at a time.
      const preview = page.locator(".greeting-preview");
      await expect(preview.locator(".greeting-text")).toHaveText("Welcome, User. I am Aria.");
      await expect(preview.locator(".swipe-count")).toHaveText("1/3");
      await preview.getByRole("button", { name: "Next greeting" }).click();
      await expect(preview.locator(".greeting-text")).toHaveText("Back again?");
      await expect(preview.locator(".swipe-count")).toHaveText("2/3");

      // A picture, through the editor.
      await page.locator('.companion-card[data-companion="Aria"]').getByRole("button", { name: "Edit Aria" }).click();
      const editor = page.getByRole("dialog", { name: "Edit companion" });
      await editor.locator('input[name="avatar"]').setInputFiles({ name: "aria.png", mimeType: "image/png", buffer: png() });
      await expect(editor.locator("img.avatar")).toBeVisible();
      await editor.getByRole("button", { name: "Cancel" }).click();
      const avatar = page.locator('.companion-card[data-companion="Aria"] img.avatar');
      await expect(avatar).toBeVisible();
      expect(await avatar.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(1);

      // The chat opens with the chosen greeting, then the message, then the reply.
      await chat.send("Hello Aria");
      await expect(chat.userMessages()).toHaveCount(1);
      await expect(chat.assistantMessages().first().locator(".content")).toHaveText("Back again?");
      await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: Hello Aria");
      await chat.waitForReplyDone();
      await expect(chat.assistantMessages()).toHaveCount(2);

      // After a reload the stored conversation is the same, in order.
      await page.reload();
      await expect(chat.status).toHaveAttribute("data-status", "connected");
      await expect(chat.assistantMessages().first().locator(".content")).toHaveText("Back again?");
      await expect(chat.messages).toHaveCount(3);
      chat.expectNoErrors();
    });

    test("import a PNG character card, chat with it, export it", async ({ page }) => {
      const chat = new ChatPage(page);
      await chat.open();
      const encoded = Buffer.from(JSON.stringify(card), "utf8").toString("base64");
      await page
        .locator('.companion-actions input[type="file"]')
        .setInputFiles({ name: "mira.png", mimeType: "image/png", buffer: png([["chara", encoded]]) });
      await expect(page.locator(".companion-card.selected")).toHaveAttribute("data-companion", "Captain Mira");
      await expect(page.locator('.companion-card[data-companion="Captain Mira"] img.avatar')).toBeVisible();
      await expect(page.locator(".greeting-preview .greeting-text")).toHaveText("Ahoy, User! I'm Captain Mira.");

      await chat.send("Where are we sailing?");
      await expect(chat.assistantMessages().first().locator(".content")).toHaveText("Ahoy, User! I'm Captain Mira.");
      await expect(chat.lastAssistant().locator(".content")).toHaveText("You said: Where are we sailing?");
      await chat.waitForReplyDone();

      // Export from the editor: a PNG whose `chara` chunk is the card.
      await page.goto("/");
      await expect(chat.status).toHaveAttribute("data-status", "connected");
      await page.getByRole("button", { name: "Edit Captain Mira" }).click();
      const editor = page.getByRole("dialog", { name: "Edit companion" });
      const download = page.waitForEvent("download");
      await editor.getByRole("link", { name: "Export PNG card" }).click();
      const file = await download;
      expect(file.suggestedFilename()).toBe("Captain_Mira.png");
      const exported = Buffer.concat((await (await file.createReadStream()).toArray()) as Buffer[]);
      const chara = textChunks(exported).get("chara");
      expect(chara).toBeDefined();
      const decoded = JSON.parse(Buffer.from(chara ?? "", "base64").toString("utf8"));
      expect(decoded.data.name).toBe("Captain Mira");
      expect(decoded.data.tags).toEqual(["sea"]);
      await editor.getByRole("button", { name: "Cancel" }).click();
      chat.expectNoErrors();
    });
  });
}

test("a bad card says why and changes nothing", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  const before = await page.locator(".companion-card").count();
  await page
    .locator('.companion-actions input[type="file"]')
    .setInputFiles({ name: "broken.png", mimeType: "image/png", buffer: png([["chara", "%%%"]]) });
  await expect(page.getByRole("alert")).toContainText("Could not import the card: the card's text in the PNG is not valid base64");
  await expect(page.locator(".companion-card")).toHaveCount(before);
});

test("the sidebar shows the conversations of one companion", async ({ page }) => {
  const chat = new ChatPage(page);
  await chat.open();
  await makeCompanion(page, "Filter me");
  await chat.send("with Filter me");
  await chat.waitForReplyDone();
  await page.goto("/");
  await expect(chat.status).toHaveAttribute("data-status", "connected");
  // The default companion (the first preset).
  await page.locator(".companion-card").first().getByRole("radio").click();
  await chat.send("with the default");
  await chat.waitForReplyDone();
  const sidebar = page.getByRole("navigation", { name: "Conversations" });
  await expect(sidebar.getByRole("link", { name: "with the default" })).toBeVisible();
  await sidebar.getByLabel("Show conversations with").selectOption({ label: "Filter me" });
  await expect(sidebar.getByRole("link", { name: "with Filter me" })).toBeVisible();
  await expect(sidebar.getByRole("link", { name: "with the default" })).toHaveCount(0);
  await sidebar.getByLabel("Show conversations with").selectOption({ label: "All companions" });
  await expect(sidebar.getByRole("link", { name: "with the default" })).toBeVisible();
});
