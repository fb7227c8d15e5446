-- Datasets. The file lives in the data directory's `datasets/` folder under `file_name`.
CREATE TABLE datasets (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    name        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX datasets_by_project ON datasets (project_id);
