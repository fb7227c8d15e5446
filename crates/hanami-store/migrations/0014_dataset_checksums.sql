-- The checksum of each dataset's file (`xxh3:` and 16 hex digits, see the store's
-- `dataset::Checksum`), taken while the file was written and compared with the file before
-- a task or an accuracy check reads it. NULL for datasets from before this version: their
-- files are read unchecked.
ALTER TABLE datasets ADD COLUMN checksum TEXT;
