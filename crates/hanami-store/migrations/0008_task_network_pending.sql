-- 1 while the network a task changed is written and synced beside its cluster's file but not
-- yet renamed into place. It is set together with the task's end, so a start that finds it
-- set completes the rename: the end is recorded, so its network must be the one in place.
ALTER TABLE tasks ADD COLUMN network_pending INTEGER NOT NULL DEFAULT 0;
