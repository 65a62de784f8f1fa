//! Switches that turn one throughput or memory mechanism off, so that each
//! can be measured against its absence in the same run, on the same build:
//! `CREDITS_TUNING_OFF=in_place,set_wise_spends credits serve`. Every
//! mechanism is on unless named here; each has a decision record
//! (`docs/decisions/`) with the command that re-measures it. An unknown name
//! stops the server at start, so a typo never measures the wrong thing.

use std::sync::OnceLock;

/// The mechanisms that may be switched off.
pub const NAMES: [&str; 8] = [
    "set_wise_spends",
    "set_wise_holds",
    "in_place",
    "kept_connections",
    "own_threads",
    "planner_settings",
    "malloc_trim",
    "fixed_page_cache",
];

/// Which mechanisms are on (all, by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// `ledger::batch`: a batch of plain spends applied set-wise.
    pub set_wise_spends: bool,
    /// `holds::batch`: a batch of plain hold requests applied set-wise.
    pub set_wise_holds: bool,
    /// SQLite: set-wise batches on the writer's own connection (`writer::in_place`).
    pub in_place: bool,
    /// PostgreSQL: the writer keeps its connections instead of taking one from the pool per transaction.
    pub kept_connections: bool,
    /// PostgreSQL: each writer worker on a thread of its own.
    pub own_threads: bool,
    /// PostgreSQL: batch transactions join by key lookups (`SET LOCAL enable_hashjoin = off`, …).
    pub planner_settings: bool,
    /// The background loop returns malloc's free memory to the system.
    pub malloc_trim: bool,
    /// SQLite: fixed page-cache sizes and SQLite's own page buffer.
    pub fixed_page_cache: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            set_wise_spends: true,
            set_wise_holds: true,
            in_place: true,
            kept_connections: true,
            own_threads: true,
            planner_settings: true,
            malloc_trim: true,
            fixed_page_cache: true,
        }
    }
}

impl Tuning {
    /// The tuning with the comma-separated mechanisms of `off` switched off.
    pub fn with_off(off: &str) -> Result<Self, String> {
        let mut tuning = Self::default();
        for name in off.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let flag = match name {
                "set_wise_spends" => &mut tuning.set_wise_spends,
                "set_wise_holds" => &mut tuning.set_wise_holds,
                "in_place" => &mut tuning.in_place,
                "kept_connections" => &mut tuning.kept_connections,
                "own_threads" => &mut tuning.own_threads,
                "planner_settings" => &mut tuning.planner_settings,
                "malloc_trim" => &mut tuning.malloc_trim,
                "fixed_page_cache" => &mut tuning.fixed_page_cache,
                other => {
                    return Err(format!("CREDITS_TUNING_OFF: unknown mechanism `{other}` (one of {NAMES:?})"))
                }
            };
            *flag = false;
        }
        Ok(tuning)
    }

    /// `CREDITS_TUNING_OFF` as this process reads it (once).
    pub fn from_env() -> Result<Self, String> {
        Self::with_off(&std::env::var("CREDITS_TUNING_OFF").unwrap_or_default())
    }
}

/// The process's tuning: `CREDITS_TUNING_OFF`, read on first use. The
/// server checks it at start (`Tuning::from_env`), so here it is well formed.
pub fn get() -> Tuning {
    static TUNING: OnceLock<Tuning> = OnceLock::new();
    *TUNING.get_or_init(|| Tuning::from_env().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{Tuning, NAMES};

    #[test]
    fn every_mechanism_is_on_unless_named_and_each_name_switches_one_off() {
        assert_eq!(Tuning::with_off("").unwrap(), Tuning::default());
        for name in NAMES {
            let tuning = Tuning::with_off(name).unwrap();
            assert_ne!(tuning, Tuning::default(), "{name}");
            let all_off = Tuning::with_off(&NAMES.join(",")).unwrap();
            assert_ne!(tuning, all_off, "{name} switches only itself off");
        }
        assert!(Tuning::with_off("in_place, set_wise_spends").is_ok());
        assert!(Tuning::with_off("inplace").unwrap_err().contains("unknown mechanism"));
    }
}
