//! `pgha-ctl`: control a running pgha daemon (placeholder until the admin
//! interface lands).
fn main() {
    eprintln!("pgha-ctl: no daemon control yet; see README.md");
    std::process::exit(2);
}
