-- When a direct-IO session first changed a cluster's network after it was last saved; NULL
-- when every change is saved. A start that finds it set reports the training as lost (the
-- server stopped without saving it: a crash).
ALTER TABLE clusters ADD COLUMN unsaved_since TEXT;
