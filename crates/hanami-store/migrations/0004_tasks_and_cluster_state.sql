-- Clusters outlive the server from this version on: their networks are saved in the data
-- directory's `clusters/` folder under `file_name`. Tasks are recorded here, so that a
-- restart can report what became of them.
CREATE TABLE tasks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    cluster_uuid TEXT NOT NULL,
    name         TEXT NOT NULL,
    total        INTEGER NOT NULL,
    current      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    queued_at    TEXT NOT NULL,
    started_at   TEXT,
    ended_at     TEXT
);
CREATE INDEX tasks_by_cluster ON tasks (cluster_uuid, seq);
