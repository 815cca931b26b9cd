//! Aggregation of journal lines into summaries, and the exporters.

pub mod summary;

pub use summary::{SummaryRow, summarize, summary_table};
