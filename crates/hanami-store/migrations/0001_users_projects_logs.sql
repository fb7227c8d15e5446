-- Users, projects, project assignments, audit and error logs.
-- `seq` columns give every table a stable insertion order, which list endpoints keep.

CREATE TABLE users (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    creator_id  TEXT NOT NULL,
    is_admin    INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    pw_hash     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE projects (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    creator_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE user_projects (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role              TEXT NOT NULL,
    is_project_admin  INTEGER NOT NULL CHECK (is_project_admin IN (0, 1)),
    UNIQUE (user_id, project_id)
);

CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    request_type  TEXT NOT NULL
);
CREATE INDEX audit_log_by_user ON audit_log (user_id, seq);

CREATE TABLE error_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    error_id      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    component     TEXT NOT NULL,
    context       TEXT NOT NULL,
    input_values  TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX error_log_by_user ON error_log (user_id, seq);
