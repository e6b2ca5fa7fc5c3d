-- Tether schema for PostgreSQL, version 5: model choice, as
-- migrations/sqlite/0006_models.sql explains.

ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN model TEXT;
