-- The files of deleted datasets, checkpoints and clusters until they are removed: a row's
-- deletion notes its file here in the same transaction, and the server forgets the note once
-- the file is gone. A start that finds notes removes those files, so that a crash between
-- deleting a row and its file leaves no deleted data behind (it used to go to
-- `unreferenced/` like files of unknown origin).
CREATE TABLE removed_files (
    folder    TEXT NOT NULL,
    file_name TEXT NOT NULL,
    PRIMARY KEY (folder, file_name)
) WITHOUT ROWID;

CREATE TRIGGER datasets_removed_file AFTER DELETE ON datasets WHEN OLD.file_name <> ''
BEGIN
    INSERT OR IGNORE INTO removed_files (folder, file_name) VALUES ('datasets', OLD.file_name);
END;

CREATE TRIGGER checkpoints_removed_file AFTER DELETE ON checkpoints WHEN OLD.file_name <> ''
BEGIN
    INSERT OR IGNORE INTO removed_files (folder, file_name)
    VALUES ('checkpoints', OLD.file_name);
END;

CREATE TRIGGER clusters_removed_file AFTER DELETE ON clusters WHEN OLD.file_name <> ''
BEGIN
    INSERT OR IGNORE INTO removed_files (folder, file_name) VALUES ('clusters', OLD.file_name);
END;
