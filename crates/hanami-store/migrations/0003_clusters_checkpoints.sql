-- Clusters (their networks live in memory; rows are removed at start-up) and checkpoints
-- (their files live in the data directory's `checkpoints/` folder under `file_name`).
CREATE TABLE clusters (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    name        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX clusters_by_project ON clusters (project_id);

CREATE TABLE checkpoints (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    name        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX checkpoints_by_project ON checkpoints (project_id);
