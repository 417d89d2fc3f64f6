-- Schema version 3: threaded messages on tasks, with optional attachments.
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY,
    task_id         INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    reply_to        INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    author          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    body_format     TEXT NOT NULL DEFAULT 'markdown',
    body            TEXT NOT NULL,
    meta            TEXT CHECK (meta IS NULL OR json_valid(meta)),
    attachment_name TEXT,
    attachment      BLOB
);
CREATE INDEX IF NOT EXISTS idx_messages_task ON messages(task_id, created_at);
CREATE INDEX IF NOT EXISTS idx_messages_author ON messages(author, created_at);
