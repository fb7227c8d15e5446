-- The smallest and largest value of each description field of a dataset, as JSON
-- (`{"label":{"min":0.0,"max":1.0},…}`), gathered while its file was written. NULL for
-- datasets from before this version: their values are then only checked as tasks read them.
ALTER TABLE datasets ADD COLUMN value_ranges TEXT;
