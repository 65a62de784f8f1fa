// `sqlx::migrate!` embeds the files under `migrations/` when the crate
// compiles; without this, a new migration alone would not rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
