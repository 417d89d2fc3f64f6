-- Schema version 2: an audit trail of task changes.
CREATE TABLE IF NOT EXISTS task_history (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    changed_at TEXT NOT NULL,
    actor      TEXT NOT NULL,
    field      TEXT NOT NULL,
    old_value  TEXT,
    new_value  TEXT,
    diff       TEXT CHECK (diff IS NULL OR json_valid(diff))
);
CREATE INDEX IF NOT EXISTS idx_task_history_task ON task_history(task_id, changed_at);
