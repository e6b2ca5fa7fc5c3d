-- Tether schema, version 6: model choice. A conversation's replies are
-- asked of its model (set when it is made; NULL for conversations made
-- before: the server's default), and each reply records the model that
-- wrote it (NULL before, and for a reply's text edited by a person).

ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN model TEXT;
