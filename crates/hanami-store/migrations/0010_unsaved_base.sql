-- Which saved network was in place when direct IO first changed a cluster's network after
-- its last save (the file's length and closing checksum, as the server words them); NULL
-- with `unsaved_since`. A start that finds another file in place knows that a save came
-- after that training began: the server stopped between the save and forgetting the note.
ALTER TABLE clusters ADD COLUMN unsaved_base TEXT;
