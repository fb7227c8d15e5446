//! Reading a page of the audit or the error log, the last one included: the server counts
//! pages from the oldest entries and does not say how many there are, so the last is found
//! by reading pages.

use hanami_sdk::types::list::ListTable;
use hanami_sdk::types::logs::LOG_PAGE_SIZE;

use crate::cli::Page;

/// The page of a log that `page` names, read by `read` (one page by its number), and its
/// number. The last page is found by doubling the page number until a page is not full,
/// then halving the gap: about two reads per doubling of the log's length (about 30 for a
/// million entries).
pub async fn read_page(
    page: Page,
    read: impl AsyncFn(u64) -> hanami_sdk::Result<ListTable>,
) -> hanami_sdk::Result<(u64, ListTable)> {
    if let Page::Number(number) = page {
        return Ok((number, read(number).await?));
    }
    let full = |table: &ListTable| table.body.len() as u64 >= u64::from(LOG_PAGE_SIZE);
    // `full_page` is a full page (so the last is later or it), `beyond` a page after it
    // known to be empty.
    let mut full_page = (0, read(0).await?);
    if !full(&full_page.1) {
        return Ok(full_page);
    }
    let mut step = 1;
    let mut beyond = loop {
        let number = full_page.0 + step;
        let table = read(number).await?;
        if table.body.is_empty() {
            break number;
        }
        if !full(&table) {
            return Ok((number, table));
        }
        full_page = (number, table);
        step *= 2;
    };
    while beyond - full_page.0 > 1 {
        let number = full_page.0 + (beyond - full_page.0) / 2;
        let table = read(number).await?;
        if table.body.is_empty() {
            beyond = number;
        } else if !full(&table) {
            return Ok((number, table));
        } else {
            full_page = (number, table);
        }
    }
    Ok(full_page)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// `-p last` over logs of every interesting length finds the right page in few reads;
    /// a page number is read as it is.
    #[test]
    fn the_last_page_is_found_for_every_length() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for entries in [
            0u64, 1, 99, 100, 101, 199, 200, 201, 250, 1000, 12_345, 1_000_000,
        ] {
            let reads = Cell::new(0);
            let read = async |number: u64| {
                reads.set(reads.get() + 1);
                let size = u64::from(LOG_PAGE_SIZE);
                let first = number * size;
                let count = entries.saturating_sub(first).min(size);
                let mut table = ListTable::new(&["n"]);
                table.body = (first..first + count).map(|n| vec![n.into()]).collect();
                Ok(table)
            };
            let (number, table) = runtime.block_on(read_page(Page::Last, read)).unwrap();
            let expected = entries.saturating_sub(1) / u64::from(LOG_PAGE_SIZE);
            assert_eq!(number, expected, "{entries} entries");
            let last = (entries > 0).then(|| serde_json::Value::from(entries - 1));
            assert_eq!(
                table.body.last().map(|row| row[0].clone()),
                last,
                "{entries}"
            );
            assert!(
                reads.get() <= 40,
                "{entries} entries: {} reads",
                reads.get()
            );
            reads.set(0);
            let (number, _) = runtime.block_on(read_page(Page::Number(7), read)).unwrap();
            assert_eq!((number, reads.get()), (7, 1));
        }
    }
}
