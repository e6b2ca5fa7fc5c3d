import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { join } from "node:path";

/**
 * Long histories written straight into a server's SQLite file (`sqlite3`
 * CLI, one transaction), for the long-conversation spec and bench row:
 * thousands of messages through the model would take minutes and measure
 * the model. The server must have started once (its schema is migrated) and
 * must be given `SESSION_SECRET`, so that the cookie of the seeded user can
 * be signed here exactly as the server signs it.
 */
export const SESSION_SECRET = "long-conversations-bench-secret-0123456789abcdef";

/** The seeded user: 128 bits in hex, as the server makes them. */
export const USER_ID = "0123456789abcdef0123456789abcdef";

/** The long conversation's id (it is the most recently active one). */
export const LONG_ID = "10000000000000000000000000000000";

/** Topics of the other conversations' titles (what a search finds). */
export const TOPICS = ["harbour", "mountain", "violin", "garden", "comet"];

/** The identity cookie value of {@link USER_ID}. */
export function cookieValue(): string {
  const mac = createHmac("sha256", SESSION_SECRET).update(USER_ID).digest("hex");
  return `${USER_ID}.${mac}`;
}

/** The id of the long conversation's message number `n` (1-based, oldest first). */
export function messageId(n: number): string {
  return `m${String(n).padStart(31, "0")}`;
}

/**
 * Writes one user with `conversations` short conversations (two messages
 * each, titles "Chat <i> about <topic>") and one long conversation of
 * `messages` messages (user and assistant in turn; the assistant's with a
 * little markdown), the most recently active. Each message follows the one
 * before it (`parent_id`; a conversation's first follows the conversation),
 * as the server stores them: without it every message would be an
 * alternative of every other, and each read would count thousands.
 * Nothing is branched (`selected`, `active` keep their default, 1).
 */
export function seed(dataDir: string, messages: number, conversations: number): void {
  const ts = (seconds: string) =>
    `strftime('%Y-%m-%dT%H:%M:%fZ', '2026-11-01', '+' || (${seconds}) || ' seconds')`;
  const topic = `CASE i % 5 ${TOPICS.map((t, k) => `WHEN ${k} THEN '${t}'`).join(" ")} END`;
  const sql = `
PRAGMA busy_timeout = 10000;
BEGIN;
INSERT INTO users (id, created_at) VALUES ('${USER_ID}', ${ts("0")});
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${conversations})
INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at)
  SELECT printf('c%031d', i), '${USER_ID}', 'Chat ' || i || ' about ' || ${topic}, 'companion',
         ${ts("i")}, ${ts("i")} FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${conversations * 2})
INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id)
  SELECT printf('s%031d', i), printf('c%031d', (i + 1) / 2),
         CASE i % 2 WHEN 1 THEN 'user' ELSE 'assistant' END,
         'A short message number ' || i || '.',
         CASE i % 2 WHEN 1 THEN NULL ELSE 'stop' END, ${ts("i")},
         CASE i % 2 WHEN 1 THEN printf('c%031d', (i + 1) / 2) ELSE printf('s%031d', i - 1) END FROM n;
INSERT INTO conversations (id, user_id, title, persona, created_at, updated_at)
  VALUES ('${LONG_ID}', '${USER_ID}', 'A very long conversation', 'companion',
          ${ts("0")}, ${ts(String(conversations + messages + 10))});
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${messages})
INSERT INTO messages (id, conversation_id, role, content, finish_reason, created_at, parent_id)
  SELECT printf('m%031d', i), '${LONG_ID}',
         CASE i % 2 WHEN 1 THEN 'user' ELSE 'assistant' END,
         CASE i % 2
           WHEN 1 THEN 'Message ' || i || ': tell me something about the day, the weather and what comes next.'
           ELSE 'Reply ' || i || ': here is **something** to think about.' || char(10) || char(10) ||
                '- the first point, with a little detail' || char(10) ||
                '- the second point, and a ' || '\`code\`' || ' word' || char(10) || char(10) ||
                'And a closing sentence that makes the reply a realistic length for a chat.'
         END,
         CASE i % 2 WHEN 1 THEN NULL ELSE 'stop' END, ${ts(`${conversations} + i`)},
         CASE i WHEN 1 THEN '${LONG_ID}' ELSE printf('m%031d', i - 1) END FROM n;
COMMIT;
`;
  execFileSync("sqlite3", [join(dataDir, "tether.db")], { input: sql, stdio: ["pipe", "ignore", "inherit"] });
}
