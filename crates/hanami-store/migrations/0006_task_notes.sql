-- What a task's owner should know about how it ended: why it was aborted, or what it could
-- not do (growth refused by a memory budget). NULL: nothing to tell.
ALTER TABLE tasks ADD COLUMN note TEXT;
