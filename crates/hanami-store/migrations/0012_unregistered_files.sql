-- The files of datasets and clusters that are being made and not registered yet (an upload's
-- finalisation, a cluster's creation): the server notes the file here before writing it,
-- and the row's insertion forgets the note (the triggers below). A start that finds a note
-- and the file without its row removes the file: a crash came before the creation was
-- registered, so nobody was told of it (such files used to pile up in `unreferenced/`).
CREATE TABLE unregistered_files (
    folder    TEXT NOT NULL,
    file_name TEXT NOT NULL,
    PRIMARY KEY (folder, file_name)
) WITHOUT ROWID;

CREATE TRIGGER datasets_registered_file AFTER INSERT ON datasets
BEGIN
    DELETE FROM unregistered_files WHERE folder = 'datasets' AND file_name = NEW.file_name;
END;

CREATE TRIGGER clusters_registered_file AFTER INSERT ON clusters
BEGIN
    DELETE FROM unregistered_files WHERE folder = 'clusters' AND file_name = NEW.file_name;
END;
