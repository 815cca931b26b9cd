//! Raw command-line arguments (clap). Nothing here is validated beyond syntax: `plan.rs`
//! turns these plus the config file into a validated plan before anything connects or writes.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dedup-lab",
    version,
    about = "Measure how much physical storage database systems spend on duplicated data"
)]
pub struct Cli {
    /// TOML configuration file (see dedup-lab.example.toml).
    #[arg(long, global = true, env = "DEDUP_LAB_CONFIG")]
    pub config: Option<PathBuf>,
    /// More detail on stderr: -v each cell and stage as it runs, -vv trace (RUST_LOG also works).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Errors only on stderr (results and the final summary still print).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write datasets with manifests to a directory, then stop (connects nowhere).
    Generate(GenerateArgs),
    /// Re-hash a dataset directory against its manifests.
    Verify {
        /// A directory written by `dedup-lab generate`.
        dir: PathBuf,
    },
    /// Intrinsic duplicate and compression ratios of datasets: the ideal store.
    Analyze(AnalyzeArgs),
    /// Run the experiment matrix (the embedded default when nothing is configured).
    Run(Box<RunArgs>),
    /// Connect to each selected system, create and drop the lab namespace, check consistency.
    Preflight(PreflightArgs),
    /// What a running or stopped run has done, failed and has left.
    Status {
        /// Run id (default: the newest run in the results directory).
        run_id: Option<String>,
        #[arg(long)]
        results: Option<PathBuf>,
        /// Look again every SECS seconds (default 2) until the run ends.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
    },
    /// List and drop what interrupted runs left in the lab namespace of each selected system.
    Cleanup(CleanupArgs),
    /// Aggregate runs (mean, sd, 95 % CI, outliers) into CSV, JSON, Markdown, LaTeX and HTML.
    Report(ReportArgs),
    /// Would a deduplicating, compressing volume catch the duplicates in these files? Reads any
    /// files or directories (never writes) and prints, per block size, the reference-count
    /// histogram and the dedup, lz4 and zstd ratios, in the manner of `zdb -S`.
    StorageSim(StorageSimArgs),
}

/// `storage-sim`'s options; `run` takes the same ones with a `--storage-sim-` prefix.
#[derive(Debug, Args)]
pub struct StorageSimArgs {
    /// Files or directories to read (directories recursively; symbolic links are not followed).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Block sizes, comma-separated powers of two from 512B to 1MiB (default 4KiB,8KiB,16KiB,128KiB).
    #[arg(long, value_name = "LIST")]
    pub block_sizes: Option<String>,
    /// The block size of the headline storage EDR (default 4KiB); one of --block-sizes.
    #[arg(long, value_name = "SIZE")]
    pub report_block_size: Option<String>,
    /// Compress 1 in N distinct blocks with lz4 and zstd and estimate the totals with their
    /// standard errors; 1 = every block (exact); auto (default) = exact up to 16 MiB of input,
    /// then 1 in ⌈input ÷ 16 MiB⌉. Dedup is always exact.
    #[arg(long, value_name = "auto|N")]
    pub sample: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the result as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// What datasets to build: shared by `generate`, `analyze` and `run`.
#[derive(Debug, Args, Clone, Default)]
pub struct DatasetArgs {
    /// Payload types, comma-separated (random_binary, structured_json, text_document, uuid_keys, jsonb_documents,
    /// and the names of real-world types defined with --real-world or [real_world] in the config).
    #[arg(long, value_delimiter = ',')]
    pub payload_types: Option<Vec<String>>,
    /// Duplication grades, comma-separated, e.g. U0,U50,U90.
    #[arg(long, value_delimiter = ',')]
    pub grades: Option<Vec<String>>,
    /// Size profile: quick (16 records of 512 KiB) or seed (500 records of 512 KiB, the original study).
    #[arg(long)]
    pub profile: Option<String>,
    /// Records per dataset (overrides the profile).
    #[arg(long)]
    pub records: Option<u64>,
    /// Record size, e.g. 512KiB or 4KiB..1MiB (overrides the profile).
    #[arg(long)]
    pub record_size: Option<String>,
    /// Total logical size per dataset, e.g. 1GiB: derives the record count from the record size.
    #[arg(long)]
    pub dataset_size: Option<String>,
    /// PRNG seed (default 20240501).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A real-world payload type NAME read from PATH: a file, a directory (read recursively)
    /// or a quoted glob, e.g. --real-world 'nasa_image=/data/nasa/*.tif'. Archives are read
    /// entry by entry. Repeatable. Without --payload-types, the types given here are the
    /// ones selected.
    #[arg(long = "real-world", value_name = "NAME=PATH")]
    pub real_world: Vec<String>,
    /// Put the SHA-256 of every real-world source file into the dataset's identity (a
    /// resumed run re-hashes the files and refuses to continue when one changed).
    #[arg(long)]
    pub verify_sources: bool,
    /// Copy the real-world source files into a new directory under DIR first and read only
    /// the copies (removed at the end, also after a failure or Ctrl-C).
    #[arg(long, value_name = "DIR")]
    pub stage_to: Option<PathBuf>,
    /// Where scratch files go (spooled records, nested zip archives): a new directory under
    /// DIR, removed at the end, also after a failure or Ctrl-C (default: the system's temp
    /// directory). Never inside a source directory.
    #[arg(long, value_name = "DIR", env = "DEDUP_LAB_SCRATCH")]
    pub scratch: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write the datasets to.
    #[arg(long, short, required_unless_present = "no_write")]
    pub output: Option<PathBuf>,
    /// Write into an existing directory that is not a dataset directory.
    #[arg(long, conflicts_with = "no_write")]
    pub force: bool,
    /// Generate and hash every record but write nothing; print each dataset's totals and
    /// fingerprint (the dataset_sha256 its manifest would carry). To check that a machine
    /// generates the same bytes as another, and for benchmarks.
    #[arg(long, conflicts_with = "output")]
    pub no_write: bool,
    /// Generator threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub dataset: DatasetArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A dataset directory to analyse (otherwise the datasets are generated in memory from the spec flags).
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Neither read nor write the analysis cache ($DEDUP_LAB_CACHE_DIR/analysis, default
    /// ~/.cache/dedup-lab/analysis): compute every dataset's intrinsic analysis afresh.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub dataset: DatasetArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Systems, comma-separated (default: the embedded sqlite, lsm, files).
    #[arg(long, value_delimiter = ',', help = systems_help())]
    pub systems: Option<Vec<String>>,
    /// Stages, comma-separated (bulk_insert, perfile_insert, perfile_delete, maintenance).
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Repetitions of every cell.
    #[arg(long)]
    pub runs: Option<u32>,
    /// Results directory (default: ./results).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Continue a stopped run: finished cells are skipped, a partly run cell is redone.
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
    /// Print the plan and its size; connect to nothing, create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the lab namespace after each cell (to inspect it).
    #[arg(long)]
    pub keep: bool,
    /// Records read back and hash-checked after each insert stage (default 8).
    #[arg(long)]
    pub readback: Option<u64>,
    /// Duplicate placement, comma-separated: within (same container) and/or across (another container).
    #[arg(long, value_delimiter = ',')]
    pub placements: Option<Vec<String>>,
    /// Cache state before each stage, comma-separated: warm and/or cold.
    #[arg(long, value_delimiter = ',')]
    pub caches: Option<Vec<String>>,
    /// Insertion mode: blob (each file one value), native (files parsed into typed records:
    /// rows, JSON documents, paragraphs, keys, chunks) or both.
    #[arg(long, value_delimiter = ',', value_name = "blob|native|both")]
    pub insertion_mode: Option<Vec<String>>,
    /// Native mode: a record that cannot be parsed fails the stage (fail, the default) or
    /// is counted and skipped (skip).
    #[arg(long, value_name = "fail|skip")]
    pub on_parse_error: Option<String>,
    /// Generator threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A study design: `original` (5 types, U0/U50/U90, 500 × 512 KiB, 3 runs) or `method`
    /// (U0/U50/U90/U95/U99, within/across, cold/warm, 3 runs, at the size you set). Flags override it.
    #[arg(long)]
    pub preset: Option<String>,
    /// Exports written into the run directory at the end, comma-separated: csv, json, md, tex, html, compat
    /// (experiment_results.csv), all, none (default: all).
    #[arg(long, value_delimiter = ',')]
    pub export: Option<Vec<String>>,
    /// Do not run the storage-layer dedup simulation over the lab's data files after insert stages.
    #[arg(long)]
    pub no_storage_sim: bool,
    /// Block sizes of the storage-layer dedup simulation (default 4KiB,8KiB,16KiB,128KiB).
    #[arg(long, value_name = "LIST")]
    pub storage_sim_block_sizes: Option<String>,
    /// The block size whose storage EDR the reports show (default 4KiB).
    #[arg(long, value_name = "SIZE")]
    pub storage_sim_report_block_size: Option<String>,
    /// Storage simulation: compress 1 in N distinct blocks (default auto; 1 = all, exact).
    #[arg(long, value_name = "auto|N")]
    pub storage_sim_sample: Option<String>,
    /// Neither read nor write the analysis cache ($DEDUP_LAB_CACHE_DIR/analysis, default
    /// ~/.cache/dedup-lab/analysis): compute every dataset's intrinsic analysis afresh.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub dataset: DatasetArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (results/<run-id>) or results directories holding runs; finished or not.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the report (default: the first directory given).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Formats, comma-separated: csv, json, md, tex, html, compat (experiment_results.csv), all, none
    /// (default: all).
    #[arg(long, value_delimiter = ',')]
    pub format: Option<Vec<String>>,
    /// Merge runs of different dedup-lab versions or datasets (flagged; different datasets stay apart).
    #[arg(long)]
    pub allow_mixed: bool,
    /// Neither read nor write the analysis cache ($DEDUP_LAB_CACHE_DIR/analysis, default
    /// ~/.cache/dedup-lab/analysis): compute every dataset's intrinsic analysis afresh.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Systems, comma-separated (default: the configured ones, else the embedded sqlite, lsm, files).
    #[arg(long, value_delimiter = ',', help = systems_help())]
    pub systems: Option<Vec<String>>,
    /// List what is in the lab namespace without dropping anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Results directory whose runs' embedded stores are cleaned (default: `results_dir` of
    /// the config, else `results`).
    #[arg(long)]
    pub results: Option<std::path::PathBuf>,
}

/// The `--systems` help: every system of the registry, with those not in this build marked.
fn systems_help() -> String {
    format!("Systems, comma-separated (default: the embedded ones): {}", dedup_lab_backends::registry::describe_all())
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// Systems, comma-separated.
    #[arg(long, value_delimiter = ',', help = systems_help())]
    pub systems: Option<Vec<String>>,
}
