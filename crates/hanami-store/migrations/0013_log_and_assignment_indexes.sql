-- The hourly log retention removes entries by their time: without an index each of its
-- statements read the whole log while it held the database's write lock, which every
-- audited request waits for. Deleting a project removes its users' assignments by project.
CREATE INDEX audit_log_by_time ON audit_log (created_at);
CREATE INDEX error_log_by_time ON error_log (created_at);
CREATE INDEX user_projects_by_project ON user_projects (project_id);
