//! What each `servesim` command does, as library functions taking an options struct, so that
//! tests reach them and the binary only parses arguments.
//!
//! Commands check what they can before doing work (the scenario, the output folder, option
//! ranges), show progress on long work, and print results; they do not hold simulation logic
//! (that is `cluster`, `search`, `calibration`, `report`).

mod calibrate;
mod profiles;
mod progress;
mod run;
mod search;
mod sweep;
mod validate;

pub use calibrate::{calibrate, calibrate_aiconfigurator, AiconfiguratorOptions, CalibrateOptions, MEASURED_HEADER};
pub use profiles::profiles;
pub use progress::{Progress, ProgressMode};
pub use run::{check_servable, load_scenario, peak_memory_mib, print_warnings, run, RunOptions};
pub use search::{merge, search, thread_count, MergeOptions, SearchOptions};
pub use sweep::{sweep, SweepOptions, SweepRow};
pub use validate::{detect, validate, InputKind, ValidateOptions};
