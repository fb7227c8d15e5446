-- What a queued task will do (the server's own JSON: the datasets it reads, the result or
-- checkpoint it makes), so that a restart queues it again instead of aborting it. NULL once
-- the task has started, and for tasks queued by versions before this one.
ALTER TABLE tasks ADD COLUMN work TEXT;
